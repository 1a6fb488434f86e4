"""Causation chains on the event detail page, whatever the causation id names: an event, a request, a job run."""

from __future__ import annotations

import structlog
from django.contrib.auth.models import User
from django.test import Client

from console.events.causation import causes, effects, resolve
from console.events.models import Event
from console.events.pipeline import emit
from tests.conftest import squeezed
from tests.events.conftest import PING


def _emit(**context: str | int) -> Event:
    with structlog.contextvars.bound_contextvars(**context):
        event = emit(PING, n=1)
    assert event is not None
    return event


def test_positions_requests_and_job_runs_all_resolve_to_an_event(db: None) -> None:
    root = _emit(request_id="req-7")
    started = emit("test.ping", n=2, stream_type="job", stream_id="job-31")
    assert started is not None
    assert resolve(str(root.position)).event == root
    assert resolve(f"event:{root.position}").event == root
    assert resolve("request:req-7").event == root and resolve("request:req-7").kind == "request"
    assert resolve("req-7").event == root  # a bare request id
    assert resolve("job_run:31").event == started and resolve("job-31").kind == "job run"
    assert resolve("nothing-here").event is None and resolve("9999999").event is None


def test_the_chain_crosses_a_request_and_a_job_run(db: None) -> None:
    clicked = _emit(request_id="req-1")
    requested = _emit(request_id="req-2", causation_id="request:req-1")
    started = emit(PING, n=3, stream_type="job", stream_id="job-5", note=f"{requested.position}")
    assert started is not None
    # Emitted inside job run 5 with no causation id of its own: the run caused it.
    inside = _emit(job_run_id=5)
    then = _emit(causation_id=str(inside.position))
    chain = causes(then)
    assert [cause.event for cause in chain] == [inside, started]
    assert [cause.kind for cause in chain] == ["event", "job run"]
    assert [cause.event for cause in causes(requested)] == [clicked]
    assert effects(inside) == [then]
    named = _emit(causation_id="job-5")
    assert effects(started) == [named]


def test_a_loop_ends_the_chain(db: None) -> None:
    first = _emit()
    second = _emit(causation_id=str(first.position))
    # Nothing in the log can rewrite first's metadata, so a loop needs a cause that names itself.
    itself = _emit(causation_id=str(second.position + 1))
    assert causes(itself) == [] and [c.event for c in causes(second)] == [first]


def test_the_detail_page_links_each_cause(client: Client, staff: User) -> None:
    clicked = _emit(request_id="req-9")
    effect = _emit(causation_id="request:req-9")
    unknown = _emit(causation_id="somewhere-else")
    client.force_login(staff)
    page = squeezed(client.get(f"/events/{effect.position}/").content.decode())
    assert (
        f'<a href="/events/?request=req-9">request req-9</a>: '
        f'<a href="/events/{clicked.position}/">#{clicked.position} test.ping</a>'
    ) in page
    page = squeezed(client.get(f"/events/{unknown.position}/").content.decode())
    assert "somewhere-else (not in the log)" in page
