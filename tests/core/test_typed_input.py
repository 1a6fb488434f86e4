"""No typed input gives a server error: every console URL, fuzzed with query strings, form bodies and headers.

Hypothesis draws the input; each URL is reached as staff holding every console permission (so the views get
past their permission checks and do real work) and anonymously (so the machine endpoints' own checks see it
too). Values lean towards what broke views before: Unicode digits, numbers past 64 bits, keyset cursors that
decode to the wrong types, times that cannot be represented, signatures that are not hex.
"""

from __future__ import annotations

import base64
import io
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import User
from django.core.handlers import wsgi
from django.core.management import call_command
from django.http import HttpResponseBase, QueryDict
from django.http import request as http_request
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from console.comms.models import ContactPoint, Message
from console.comms.views import sign
from console.core.models import MaintenanceTick, Operation, WorkerHeartbeat
from console.events import subscriptions
from console.events.models import Event, WebhookDelivery
from console.events.services import webhook_create
from console.eventsourcing import projections
from console.eventsourcing.services import rebuild_start
from console.jobs.catalog import lookup
from console.jobs.introspect import Token
from console.jobs.models import JobRun
from console.jobs.services import When, schedule_save
from tests.conftest import squeezed

INBOUND_SECRET = "fuzz-secret"

# Whole-number look-alikes: str.isdigit() is True for most, int() accepts some, and none is an ASCII number.
NUMBER_LIKE = ["²", "³¹", "①", "\u0661\u0662", "\u07c0", "\U0001d7d7", "\u0663\u0664\u0665", "1²"]
NUMBER_LIKE += ["+1", "-1", " 7", "1_000", "0x1f", "1e3", "1.5", "", "0", str(2**63), str(2**64)]
# Dates and times at the edges of what Python and the databases can hold, with and without offsets.
TIME_LIKE = [
    "0001-01-01T00:00+01:00",
    "0001-01-01T00:00",
    "0001-01-01",
    "9999-12-31T23:59-01:00",
    "9999-12-31T23:59:59.999999",
    "9999-12-31",
    "2026-02-30",
    "2026-01-31T25:00",
    "1970-01-01T00:00Z",
]
# Values the views' filters offer, so fuzzed input also reaches the paths behind a valid filter.
CHOICES = ["failed", "sent", "delivered", "newest", "oldest", "address", "recent", "all", "1", "yes", "true", "email"]
# Keys whose values the console parses; each URL is fuzzed with the keys its view reads (see keys_read).
CURSOR_KEYS = ["after", "before"]
TIME_KEYS = ["since", "until", "as_of_time"]
NUMBER_KEYS = ["from", "version", "compare", "generation", "page", "per_page", "limit", "ids", "contact", "of"]
KNOWN_KEYS = [*CURSOR_KEYS, *TIME_KEYS, *NUMBER_KEYS, "sort", "seen", "type", "scope", "query", "force", "confirm"]
KNOWN_KEYS += ["range"]


# Cursors that decode (base64url JSON) to values of the wrong type or out of range for the columns they page by.
CURSOR_LIKE = [
    '[{"d":"x"}]',
    "[1e999]",
    '["x"]',
    "[true]",
    "[null]",
    "[1.5]",
    "[18446744073709551616]",
    '[{"t":"0001-01-01T00:00+01:00"},1]',
    '[{"t":"9999-12-31T23:59-01:00"},1]',
    '[{"t":"2026-01-31T12:00"},1]',
    '[{"t":"x"},{"d":"NaN"}]',
    '{"t":1}',
]


def _base64url(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _cursor(values: list[Any]) -> str:
    return _base64url(json.dumps(values, allow_nan=True, separators=(",", ":")))


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["t", "d", "x"]), inner, max_size=2),
    ),
    max_leaves=6,
)
# Cursors this console never wrote: one or two values of any JSON type, or {"t": ...}/{"d": ...} with junk.
generated_cursors = st.lists(
    st.one_of(
        json_values,
        st.builds(lambda v: {"t": v}, st.one_of(st.sampled_from(TIME_LIKE), st.text(max_size=12))),
        st.builds(lambda v: {"d": v}, st.one_of(st.sampled_from(["x", "NaN", "Infinity", "1e999999"]), json_scalars)),
    ),
    min_size=1,
    max_size=2,
).map(_cursor)
cursors = st.one_of(st.sampled_from(CURSOR_LIKE).map(_base64url), generated_cursors)
numbers = st.one_of(
    st.sampled_from(NUMBER_LIKE),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.just("9" * 5000),
)
values = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["\x00", "a\x00b"]),  # PostgreSQL text cannot hold NUL
    numbers,
    st.sampled_from(TIME_LIKE),
    st.sampled_from(CHOICES),
    cursors,
)


def value_for(key: str) -> st.SearchStrategy[str]:
    """Values that suit what the console reads under ``key`` (most of the time), or anything at all."""
    if key in CURSOR_KEYS:
        return st.one_of(cursors, numbers, values)
    if key in TIME_KEYS:
        return st.one_of(st.sampled_from(TIME_LIKE), values)
    if key in NUMBER_KEYS:
        return st.one_of(numbers, values)
    return values


def known_pairs(keys: list[str], size: int) -> st.SearchStrategy[list[tuple[str, str]]]:
    pair = st.sampled_from(keys).flatmap(lambda key: st.tuples(st.just(key), value_for(key)))
    return st.lists(pair, min_size=size, max_size=size)


def pairs(keys: list[str], max_size: int = 5) -> st.SearchStrategy[list[tuple[str, str]]]:
    """Up to ``max_size`` pairs, mostly keys the view reads with suitable values, some keys it never heard of."""
    known = st.sampled_from(keys).flatmap(lambda key: st.tuples(st.just(key), value_for(key)))
    anything = st.tuples(st.text(min_size=1, max_size=8), values)
    return st.lists(st.one_of(known, known, anything), max_size=max_size)


# What a proxy passes on in a header: Latin-1 text, since WSGI decodes header bytes as Latin-1.
header_text = st.text(st.characters(max_codepoint=255, exclude_characters="\r\n"), max_size=40)
signatures = st.one_of(
    header_text,
    st.builds(lambda t, v: f"t={t},v1={v}", st.one_of(numbers, header_text), header_text),
)
# Provider reports: the fields the endpoint reads, each with any JSON value, or any JSON at all.
REPORT_KEYS = ["event_id", "event", "metadata", "provider_id", "source", "description", "code"]
reports = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"event_id": st.one_of(st.text(max_size=10), json_values), "event": st.sampled_from(["delivered", "bounced"])},
        optional={
            "metadata": st.one_of(
                json_values,
                st.fixed_dictionaries(
                    {},
                    optional={
                        "console_message_id": st.one_of(numbers, json_values),
                        "console_delivery_id": st.one_of(numbers, json_values),
                    },
                ),
            ),
            "code": st.one_of(numbers, json_values),
            "provider_id": json_values,
            "source": json_values,
            "description": json_values,
        },
    ),
    st.dictionaries(st.sampled_from(REPORT_KEYS), json_values),
)


# --- the URLs and the world they are filled from --------------------------------------------------------------


def console_routes() -> list[tuple[str, str, list[str]]]:
    """Every console URL pattern: ``namespace:name``, its route and the names of its path arguments."""

    def walk(
        patterns: list[URLPattern | URLResolver], namespace: str, prefix: str
    ) -> Iterator[tuple[str, str, list[str]]]:
        for entry in patterns:
            if isinstance(entry, URLResolver):
                yield from walk(entry.url_patterns, entry.namespace or namespace, prefix + str(entry.pattern))
            else:
                yield f"{namespace}:{entry.name}", prefix + str(entry.pattern), sorted(entry.pattern.converters)

    return sorted(walk(get_resolver("console.urls").url_patterns, "", ""))


ROUTES = console_routes()
MACHINE_ENDPOINTS = {"core:healthz", "events:metrics", "events:feed", "comms:inbound"}
# What fills a path argument, by the route's beginning (first match wins) and the argument's name.
FILLS = [
    ("events/subscriptions/", "name", "subscriber"),
    ("events/", "position", "event"),
    ("webhooks/deliveries/", "pk", "delivery"),
    ("webhooks/", "pk", "endpoint"),
    ("messages/previews/", "key", "message_class"),
    ("messages/", "pk", "message"),
    ("jobs/runs/", "pk", "run"),
    ("jobs/schedules/", "pk", "schedule"),
    ("jobs/", "command", "command"),
    ("projections/rebuilds/", "run_id", "rebuild"),
    ("projections/", "name", "projection"),
    ("streams/", "stream_id", "stream"),
    ("read-models/accounts/", "account_id", "stream"),
    ("operations/", "pk", "operation"),
    ("charts/", "name", "chart_source"),
]


@dataclass
class World:
    """A seeded console: at least one of everything a URL can name."""

    event: int
    run: int
    message: int
    endpoint: int
    delivery: int
    stream: str
    subscriber: str
    projection: str
    rebuild: int
    schedule: int
    operation: int
    command: str = "demo_report"
    message_class: str = "order_confirmation"
    chart_source: str = "webhooks"

    def kwargs(self, route: str, arguments: list[str]) -> dict[str, Any]:
        return {
            argument: next(
                getattr(self, attribute)
                for start, name, attribute in FILLS
                if route.startswith(start) and name == argument
            )
            for argument in arguments
        }


@pytest.fixture
def world(operator: User, settings: Any) -> World:
    settings.CONSOLE_COMMS = {"INBOUND_SECRET": INBOUND_SECRET, "ALERT_EMAILS": []}
    call_command("console_demo", events=20, messages=10, verbosity=0, stdout=io.StringIO())
    now = timezone.now()
    # /healthz answers 503 without a live worker and tick; with them, any 5xx is a failure.
    WorkerHeartbeat.objects.create(worker="fuzz:1", backend="fuzz", seen_at=now)
    MaintenanceTick.objects.create(runner="fuzz:1", ran_at=now)
    event = Event.objects.order_by("position").first()
    assert event is not None
    endpoint = webhook_create(actor=operator, name="Fuzz", url="http://127.0.0.1:9/hook", event_types=[])
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint, event=event, event_position=event.position, event_type=event.type, message_id="fuzz-1"
    )
    projection = next(p.name for p in projections.registered() if p.mode == "async")
    stream = Event.objects.filter(stream_type="account").values_list("stream_id", flat=True).first()
    run, message = JobRun.objects.order_by("pk").first(), Message.objects.order_by("pk").first()
    assert stream and run and message and ContactPoint.objects.exists()
    return World(
        event=event.position,
        run=run.pk,
        message=message.pk,
        endpoint=endpoint.pk,
        delivery=delivery.pk,
        stream=stream,
        subscriber=subscriptions.registered()[0].name,
        projection=projection,
        rebuild=rebuild_start(projection=projection, actor=operator).pk,
        schedule=schedule_save(
            actor=operator,
            name="fuzz",
            info=lookup("demo_report"),
            tokens=[Token("Q1"), Token("build")],
            when=When(cron="0 3 * * *"),
        ).pk,
        # No app in this site starts operations of this kind (yet): its pages must still answer cleanly.
        operation=Operation.objects.create(kind="fuzz.count", label="Fuzz").pk,
    )


def body_of(response: HttpResponseBase) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content  # type: ignore[attr-defined]


def assert_clean(response: HttpResponseBase, what: str) -> None:
    body = body_of(response)
    assert response.status_code < 500, (what, response.status_code, body[:500])
    assert b"Traceback" not in body, what


# --- the property ---------------------------------------------------------------------------------------------


def test_it_walks_every_console_url() -> None:
    names = {name for name, _, _ in ROUTES}
    assert names >= MACHINE_ENDPOINTS
    assert len(names) >= 40, names


def test_it_knows_what_fills_every_path_argument() -> None:
    for name, route, arguments in ROUTES:
        for argument in arguments:
            assert any(route.startswith(start) and argument == fills for start, fills, _ in FILLS), (name, argument)


@pytest.mark.parametrize(("name", "route", "arguments"), ROUTES, ids=[name for name, _, _ in ROUTES])
@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    database=None,
    # One seeded world per URL, shared by its examples: each must hold whatever the earlier ones wrote.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_input_gives_a_server_error(
    client: Client, operator: User, world: World, name: str, route: str, arguments: list[str], data: st.DataObject
) -> None:
    path = reverse(name, kwargs=world.kwargs(route, arguments))
    client.force_login(operator)
    keys = keys_read(client, name, path) or KNOWN_KEYS
    htmx = {"HX-Request": "true"} if data.draw(st.booleans(), label="htmx") else {}
    # One key alone reaches the code behind it; several at once find what they do together.
    for query in (data.draw(known_pairs(keys, 1), label="one"), data.draw(pairs(keys), label="query")):
        url = f"{path}?{urlencode(query)}"
        assert_clean(client.get(url, headers=htmx), f"GET {url}")
    for size in (1, 5):
        body = draw_body(name, data, keys, size)
        assert_clean(body.post(client, path, htmx), f"POST {path} {body}")

    client.logout()
    assert_clean(client.get(url), f"anonymous GET {url}")
    assert_clean(body.post(client, path, {}), f"anonymous POST {path} {body}")


class KeysRead(QueryDict):
    """A query string or form that notes each key looked up in it: a probe learns what a view reads."""

    seen: ClassVar[set[str]] = set()

    def __getitem__(self, key: str) -> Any:
        self.seen.add(key)
        return super().__getitem__(key)

    def _getlist(self, key: str, *args: Any, **kwargs: Any) -> Any:
        self.seen.add(key)
        return super()._getlist(key, *args, **kwargs)  # type: ignore[misc]  # private, so not in the stubs

    def __contains__(self, key: object) -> bool:
        self.seen.add(str(key))
        return super().__contains__(key)


_keys: dict[str, list[str]] = {}


def keys_read(client: Client, name: str, path: str) -> list[str]:
    """The query and form keys the view reads, learnt once per run from an empty GET and an empty POST.

    Fuzzing those keys, rather than names drawn from every page, finds in a handful of examples what a view
    does with a bad value.
    """
    if name not in _keys:
        KeysRead.seen.clear()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(wsgi, "QueryDict", KeysRead)
            patch.setattr(http_request, "QueryDict", KeysRead)
            client.get(path)
            client.post(path, "", content_type="application/x-www-form-urlencoded")
        _keys[name] = sorted(KeysRead.seen - {"csrfmiddlewaretoken"})
    return _keys[name]


@dataclass
class Body:
    data: bytes | str
    content_type: str
    headers: dict[str, str]

    def post(self, client: Client, path: str, headers: dict[str, str]) -> HttpResponseBase:
        return client.post(path, self.data, content_type=self.content_type, headers={**headers, **self.headers})


def draw_body(name: str, data: st.DataObject, keys: list[str], size: int) -> Body:
    """A form body (one known key, or up to ``size`` pairs), or for the provider endpoint a JSON report, signed
    right or with any header at all."""
    if name != "comms:inbound":
        form = known_pairs(keys, 1) if size == 1 else pairs(keys, size)
        return Body(urlencode(data.draw(form, label="form")), "application/x-www-form-urlencoded", {})
    raw = json.dumps(data.draw(reports, label="report"), allow_nan=True).encode()
    signature = data.draw(st.one_of(st.just(sign(INBOUND_SECRET, raw, int(time.time()))), signatures), label="sig")
    return Body(raw, "application/json", {"X-Console-Signature": signature})


# --- the cases issue 11 lists, one by one ---------------------------------------------------------------------

# Cursors that decode (base64url JSON) to values the page's columns cannot hold; /messages/ pages by two columns.
TAMPERED_CURSORS = {
    "/events/": ['[{"d":"x"}]', "[1e999]", '["x"]', "[18446744073709551616]"],
    "/jobs/runs/": ['[{"d":"x"}]', "[1e999]", '["x"]', "[true]"],
    "/messages/": ['[{"d":"x"},1]', '[{"t":"x"},1e999]', '[{"t":"0001-01-01T00:00+01:00"},1]', "[1,1]"],
}
NOT_VALID = "That page link is not valid any more; showing the first page."


@pytest.mark.parametrize(("path", "raw"), [(path, raw) for path, raws in TAMPERED_CURSORS.items() for raw in raws])
@pytest.mark.parametrize("direction", ["after", "before"])
@pytest.mark.parametrize("htmx", [False, True])
def test_a_tampered_cursor_shows_the_first_page_and_says_why(
    client: Client, operator: User, world: World, path: str, raw: str, direction: str, htmx: bool
) -> None:
    client.force_login(operator)
    headers = {"HX-Request": "true"} if htmx else {}
    first = squeezed(_without_csrf_tokens(client.get(path, headers=headers).content.decode()))
    response = client.get(path, {direction: _base64url(raw)}, headers=headers)
    assert response.status_code == 200
    body = squeezed(_without_csrf_tokens(response.content.decode()))
    assert NOT_VALID in body
    assert squeezed(body.replace(f'<p class="error" role="alert">{NOT_VALID}</p>', "")) == first


def _without_csrf_tokens(page: str) -> str:
    """Each response masks the CSRF token and draws the CSP nonce afresh; nothing else may differ."""
    return re.sub(r'nonce="[^"]+"', 'nonce="<nonce>"', re.sub(r"[A-Za-z0-9]{64}", "<csrf>", page))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/streams/a%00b/"),
        ("get", "/read-models/accounts/a%00b/"),
        ("post", "/read-models/accounts/a%00b/act/"),
        ("get", "/jobs/a%00b/"),
        ("post", "/events/subscriptions/a%00b/pause/"),
        ("post", "/projections/a%00b/rebuild/"),
    ],
)
def test_a_nul_in_a_path_argument_is_a_404(client: Client, operator: User, method: str, path: str) -> None:
    client.force_login(operator)
    assert getattr(client, method)(path).status_code == 404
