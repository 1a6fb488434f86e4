from __future__ import annotations

import json
from datetime import timedelta

import django_filters
import django_tables2 as tables
from django.contrib import messages
from django.db.models import Count, Sum
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from console.core import charts
from console.core.auth import require_perm, staff_required
from console.core.http import ConsoleRequest, client_redirect, page, piece, wants_fragment
from console.core.inputs import whole_number
from console.core.models import Operation
from console.core.tables import TABLE_REGION, ConsoleTable, Ordering, filtered_table
from console.events import causation, retention, rollups, seal, seal_check, services, subscriptions
from console.events import metrics as event_metrics
from console.events.access import token_or_staff
from console.events.browse import ORDERINGS, EventFilter, rows_html
from console.events.catalog import catalog
from console.events.conf import events_settings
from console.events.declarations import LOG_VERIFIED
from console.events.forms import EnableForm, ReplayForm, RotateForm, WebhookForm
from console.events.models import (
    Checkpoint,
    Event,
    ParkedEvent,
    Seal,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookHealth,
)
from console.events.reader import START, Cursor, cursor_of, read_batch, uses_xid
from console.events.webhook_replay import KIND as REPLAY_KIND

# How many related events the detail page lists.
RELATED_LIMIT = 50
# A webhook endpoint's health: hour by hour over the last day, in total over the last week.
HEALTH_HOURS = 24
HEALTH_DAYS = 7
# The replays an endpoint's replay page lists, newest first.
REPLAYS_SHOWN = 5


@staff_required
@require_GET
def event_list(request: ConsoleRequest) -> HttpResponse:
    ft = filtered_table(
        request,
        queryset=Event.objects.select_related("actor"),
        filterset_class=EventFilter,
        table_class=None,
        orderings=ORDERINGS,
        default_sort="newest",
    )
    context = {
        "ft": ft,
        "rows": rows_html(list(ft.page.rows), reverse("events:list")),
        "target_url": reverse("events:list"),
        "types": sorted(catalog),
        "charts": charts.region(request, "events"),
    }
    return page(request, "events/event_list.html", context, fragment="table-region")


def _json(value: object) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


@staff_required
@require_GET
def event_detail(request: ConsoleRequest, position: int) -> HttpResponse:
    event = get_object_or_404(Event.objects.select_related("actor"), position=position)
    same_request: list[Event] = []
    if event.request_id:
        same_request = list(
            Event.objects.with_request(event.request_id)
            .exclude(position=event.position)
            .order_by("position")[:RELATED_LIMIT]
        )
    context = {
        "event": event,
        "data_json": _json(event.data),
        "metadata_json": _json(event.metadata),
        "declared": catalog.get(event.type),
        "causes": causation.causes(event),
        "effects": causation.effects(event),
        "same_request": same_request,
    }
    return render(request, "events/event_detail.html", context)


@staff_required
@require_GET
def event_catalog(request: ConsoleRequest) -> HttpResponse:
    conf = events_settings()
    types = [
        (event_type, conf.retention_days.get(event_type.name, event_type.retention_days))
        for _, event_type in sorted(catalog.items())
    ]
    return render(request, "events/catalog.html", {"types": types})


def _event_json(event: Event) -> dict[str, object]:
    return {
        "position": event.position,
        "type": event.type,
        "schema_version": event.schema_version,
        "stream_type": event.stream_type,
        "stream_id": event.stream_id,
        "version": event.version,
        "recorded_at": event.recorded_at.isoformat(),
        "actor_id": event.actor_id,
        "data": event.data,
        "metadata": event.metadata,
    }


def _feed_cursor(after: int) -> Cursor | None:
    """The reader's cursor just past the event at ``after``; ``None`` when that cannot be known.

    Clients only see positions. In position order any position will do; in transaction order the event
    itself says where it sits, so a position that is not in the log (pruned, never written) is refused.
    """
    if after <= 0:
        return START
    if not uses_xid():
        return (None, after)
    event = Event.objects.filter(position=after).only("position", "tx").first()
    return None if event is None else cursor_of(event)


@never_cache
@require_GET
@token_or_staff(lambda: events_settings().feed_token)
def feed(request: HttpRequest) -> JsonResponse:
    """Events after ``?after=<position>`` in commit order; pass the answer's ``next`` back to continue."""
    conf = events_settings()
    after = whole_number(request.GET.get("after") or "0")
    limit = whole_number(request.GET.get("limit", str(conf.feed_limit)))
    if after is None or limit is None:
        return JsonResponse({"error": "after and limit must be whole numbers (ASCII digits)"}, status=400)
    if not 1 <= limit <= conf.feed_limit:
        return JsonResponse({"error": f"limit must be between 1 and {conf.feed_limit}"}, status=400)
    types = [t for t in request.GET.getlist("type") if t] or None
    if types and any("\x00" in t for t in types):
        return JsonResponse({"error": "type must not contain NUL characters"}, status=400)
    cursor = _feed_cursor(after)
    if cursor is None:
        return JsonResponse(
            {"error": f"position {after} is not in the log (pruned?): start again from after=0"}, status=410
        )
    events = read_batch(cursor, limit=limit, types=types)
    return JsonResponse(
        {"events": [_event_json(event) for event in events], "next": events[-1].position if events else after}
    )


@never_cache
@require_GET
@token_or_staff(lambda: events_settings().metrics_token)
def metrics(request: HttpRequest) -> HttpResponse:
    body, content_type = event_metrics.exposition()
    return HttpResponse(body, content_type=content_type)


# --- webhooks ---------------------------------------------------------------------------------------------------


@staff_required
@require_GET
def webhook_list(request: ConsoleRequest) -> HttpResponse:
    endpoints = WebhookEndpoint.objects.all()
    return render(request, "events/webhook_list.html", {"endpoints": endpoints})


@never_cache
@staff_required
@require_http_methods(["GET", "POST"])
def webhook_new(request: ConsoleRequest) -> HttpResponse:
    require_perm(request, "events.add_webhookendpoint")
    form = WebhookForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        endpoint = services.webhook_create(
            actor=request.user,
            name=form.cleaned_data["name"],
            url=form.cleaned_data["url"],
            event_types=list(form.cleaned_data["event_types"]),
            active=form.cleaned_data["active"],
        )
        return _show_secret_once(request, endpoint, created=True)
    return render(request, "events/webhook_form.html", {"form": form, "endpoint": None})


def _show_secret_once(request: ConsoleRequest, endpoint: WebhookEndpoint, *, created: bool) -> HttpResponse:
    """The one page that ever shows a secret: the answer to the POST that made it, kept by no cache."""
    context = {"endpoint": endpoint, "secret": endpoint.secret, "created": created}
    response = render(request, "events/webhook_secret.html", context)
    add_never_cache_headers(response)
    return response


@never_cache
@staff_required
@require_http_methods(["GET", "POST"])
def webhook_rotate(request: ConsoleRequest, pk: int) -> HttpResponse:
    require_perm(request, "events.change_webhookendpoint")
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    form = RotateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        endpoint.secret = services.webhook_rotate_secret(
            actor=request.user, endpoint=endpoint, overlap=timedelta(hours=form.cleaned_data["overlap_hours"])
        )
        return _show_secret_once(request, endpoint, created=False)
    return render(request, "events/webhook_secret.html", {"endpoint": endpoint, "form": form})


@staff_required
@require_http_methods(["GET", "POST"])
def webhook_edit(request: ConsoleRequest, pk: int) -> HttpResponse:
    require_perm(request, "events.change_webhookendpoint")
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    initial = {
        "name": endpoint.name,
        "url": endpoint.url,
        "event_types": endpoint.event_types,
        "active": endpoint.active,
    }
    form = WebhookForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        services.webhook_update(
            actor=request.user,
            endpoint=endpoint,
            name=form.cleaned_data["name"],
            url=form.cleaned_data["url"],
            event_types=list(form.cleaned_data["event_types"]),
            active=form.cleaned_data["active"],
        )
        messages.success(request, "Webhook saved.")
        return redirect("events:webhook", pk=endpoint.pk)
    return render(request, "events/webhook_form.html", {"form": form, "endpoint": endpoint})


class DeliveryFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=WebhookDelivery.Status.choices, empty_label="any")

    class Meta:
        model = WebhookDelivery
        fields: list[str] = []


class DeliveryTable(ConsoleTable):
    id = tables.Column(verbose_name="Delivery")
    event_position = tables.Column(verbose_name="Event")
    event_type = tables.Column(verbose_name="Type")
    status = tables.Column()
    attempts = tables.Column()
    last_status_code = tables.Column(verbose_name="HTTP", default="—")
    last_error = tables.Column(verbose_name="Error", default="")
    next_attempt_at = tables.DateTimeColumn(verbose_name="Next attempt", format="Y-m-d H:i:s")
    # A template column: it renders in the page's own context, which holds the CSRF token and the perms.
    resend = tables.TemplateColumn(
        "{% if perms.events.change_webhookendpoint and record.event_id %}"
        '<form method="post" action="{% url "events:webhook_resend" record.pk %}">{% csrf_token %}'
        '<button type="submit" class="secondary">Resend</button></form>{% endif %}',
        verbose_name="",
        orderable=False,
    )

    class Meta(ConsoleTable.Meta):
        model = WebhookDelivery
        fields = ["id", "event_position", "event_type", "status", "attempts"]
        empty_text = "Nothing delivered to this endpoint yet."

    def render_event_position(self, value: int) -> str:
        return format_html('<a href="{}">#{}</a>', reverse("events:detail", args=[value]), value)

    def render_status(self, value: str) -> str:
        return format_html('<span class="badge {}">{}</span>', value, value)


DELIVERY_ORDERINGS = {"newest": ("Newest", Ordering("id", "id", descending=True))}


@staff_required
@require_GET
def webhook_detail(request: ConsoleRequest, pk: int) -> HttpResponse:
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    ft = filtered_table(
        request,
        queryset=endpoint.deliveries.all(),
        filterset_class=DeliveryFilter,
        table_class=DeliveryTable,
        orderings=DELIVERY_ORDERINGS,
        default_sort="newest",
    )
    context = {
        "endpoint": endpoint,
        "ft": ft,
        "target_url": reverse("events:webhook", args=[pk]),
        "charts": charts.region(request, "webhooks", endpoint.pk),
        "health": _health(endpoint),
        "enable_form": EnableForm(),
    }
    return page(request, "events/webhook_detail.html", context, fragment=TABLE_REGION)


def _health(endpoint: WebhookEndpoint) -> dict[str, object]:
    """The last day hour by hour, and the week in total."""
    now = timezone.now()
    week = WebhookHealth.objects.filter(endpoint=endpoint).since(now - timedelta(days=HEALTH_DAYS))
    totals = week.aggregate(attempts=Sum("attempts"), succeeded=Sum("succeeded"), total_ms=Sum("total_ms"))
    attempts = totals["attempts"] or 0
    return {
        "hours": list(week.filter(hour__gte=now - timedelta(hours=HEALTH_HOURS))),
        "attempts": attempts,
        "success_percent": round(100 * (totals["succeeded"] or 0) / attempts) if attempts else None,
        "mean_ms": round((totals["total_ms"] or 0) / attempts) if attempts else None,
    }


@staff_required
@require_POST
def webhook_test(request: ConsoleRequest, pk: int) -> HttpResponse:
    require_perm(request, "events.change_webhookendpoint")
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    outcome = services.webhook_test(actor=request.user, endpoint=endpoint)
    if wants_fragment(request):
        return piece(request, "events/webhook_detail.html#test-result", {"endpoint": endpoint, "outcome": outcome})
    summary = f"HTTP {outcome.status_code}" if outcome.status_code is not None else outcome.error
    if outcome.ok:
        messages.success(request, f"Test event accepted: {summary} in {outcome.duration_ms} ms.")
    else:
        messages.error(request, f"Test event not accepted: {outcome.error or summary}.")
    return redirect("events:webhook", pk=pk)


@staff_required
@require_http_methods(["GET", "POST"])
def webhook_replay(request: ConsoleRequest, pk: int) -> HttpResponse:
    require_perm(request, "events.change_webhookendpoint")
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    # An empty POST is still a submitted form: it says what is missing.
    form = ReplayForm(request.POST if request.method == "POST" else None, endpoint=endpoint)
    if request.method == "POST" and form.is_valid() and form.replay is not None:
        operation = services.webhook_replay_start(
            actor=request.user, endpoint=endpoint, replay=form.replay, count=form.count
        )
        messages.success(request, f"{operation.label}: started.")
        return redirect("events:webhook_replay", pk=pk)
    replays = Operation.objects.filter(kind=REPLAY_KIND, params__endpoint=pk).order_by("-pk")[:REPLAYS_SHOWN]
    context = {"endpoint": endpoint, "form": form, "replays": replays, "can_cancel": True}
    return render(request, "events/webhook_replay.html", context)


@staff_required
@require_POST
def webhook_enable(request: ConsoleRequest, pk: int) -> HttpResponse:
    require_perm(request, "events.change_webhookendpoint")
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    form = EnableForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest("Choose whether to deliver from where it stopped or from now.")
    if endpoint.active:
        messages.info(request, "That endpoint is already enabled.")
        return redirect("events:webhook", pk=pk)
    resume = form.cleaned_data["resume"]
    enabled = services.webhook_enable(actor=request.user, endpoint=endpoint, resume=resume)
    if not resume:
        messages.success(request, f"Enabled from now: {enabled.skipped} waiting deliveries given up.")
    elif enabled.missed is None:
        messages.success(request, f"Enabled: {enabled.due} waiting deliveries are due now; nothing else was missed.")
    else:
        messages.success(
            request,
            f"Enabled: {enabled.due} waiting deliveries are due now, and the {enabled.missed.total or 'many'} "
            "events published while it was off are being queued.",
        )
        return redirect("events:webhook_replay", pk=pk)
    return redirect("events:webhook", pk=pk)


@staff_required
@require_POST
def webhook_resend(request: ConsoleRequest, pk: int) -> HttpResponse:
    require_perm(request, "events.change_webhookendpoint")
    delivery = get_object_or_404(WebhookDelivery.objects.select_related("endpoint"), pk=pk)
    if delivery.event_id is None:
        raise Http404("That event was pruned; it cannot be sent again.")
    again = services.delivery_resend(actor=request.user, delivery=delivery)
    messages.success(request, f"Event #{again.event_position} queued again as delivery {again.pk}.")
    return redirect("events:webhook", pk=delivery.endpoint_id)


# --- subscriptions ----------------------------------------------------------------------------------------------


@staff_required
@require_GET
def subscription_list(request: ConsoleRequest) -> HttpResponse:
    """Every subscriber's checkpoint; the table polls for itself while one is behind (a rollups rebuild reading
    the log again), and stops once all have caught up."""
    newest = Event.objects.order_by("-position").values_list("position", flat=True).first() or 0
    checkpoints = {
        checkpoint.name: checkpoint for checkpoint in Checkpoint.objects.annotate(parked_count=Count("parked"))
    }
    rows = []
    for subscriber in subscriptions.registered():
        checkpoint = checkpoints.get(subscriber.name)
        position = getattr(checkpoint, "position", 0)
        read = min(100, int(100 * position / newest)) if newest else 100
        rows.append((subscriber, checkpoint, max(newest - position, 0), read))
    behind = any(row[2] for row in rows)
    context = {"rows": rows, "behind": behind, "rollups": rollups.NAME}
    if not wants_fragment(request):
        context["parked"] = ParkedEvent.objects.select_related("checkpoint", "event").order_by("-parked_at")[
            :RELATED_LIMIT
        ]
    return page(request, "events/subscriptions.html", context, fragment="subscribers", stop_polling=not behind)


@staff_required
@require_POST
def rollups_rebuild(request: ConsoleRequest) -> HttpResponse:
    """Drop the charts' rollups and let their subscriber read the whole log again (audited)."""
    require_perm(request, "events.change_checkpoint")
    services.rollups_rebuild(actor=request.user)
    messages.success(request, "Rollups dropped: the charts fill again as events.rollups reads the log (see below).")
    return redirect("events:subscriptions")


def _subscriber_or_404(name: str) -> str:
    try:
        return subscriptions.get(name).name
    except LookupError:
        raise Http404("No subscriber has this name.") from None


@staff_required
@require_POST
def subscription_pause(request: ConsoleRequest, name: str) -> HttpResponse:
    require_perm(request, "events.change_checkpoint")
    services.subscription_pause(actor=request.user, name=_subscriber_or_404(name))
    messages.success(request, f"Subscriber {name} paused.")
    return redirect("events:subscriptions")


@staff_required
@require_POST
def subscription_resume(request: ConsoleRequest, name: str) -> HttpResponse:
    require_perm(request, "events.change_checkpoint")
    services.subscription_resume(actor=request.user, name=_subscriber_or_404(name))
    messages.success(request, f"Subscriber {name} resumed; it catches up in the background.")
    return redirect("events:subscriptions")


# --- the sealed log ---------------------------------------------------------------------------------------------


@staff_required
@require_GET
def sealed_log(request: ConsoleRequest) -> HttpResponse:
    """The chain of seals, the last verification, and each type's retention with its archived ranges."""
    head = Seal.objects.order_by("-pk").first()
    context = {
        "sealing": events_settings().seal,
        "head": head,
        "seals": Seal.objects.count(),
        "sealer": Checkpoint.objects.filter(name=seal.SEALER).first(),
        "unsealed": seal.unsealed_count(head),
        "last_check": Event.objects.filter(type=LOG_VERIFIED.name)
        .select_related("actor")
        .order_by("-position")
        .first(),
        "verifying": seal_check.latest(),
        "can_cancel": request.user.has_perm("events.verify_log"),
        "archive_dir": events_settings().archive_dir,
        "types": retention.overview(),
    }
    return render(request, "events/sealed_log.html", context)


@staff_required
@require_POST
def sealed_log_verify(request: ConsoleRequest) -> HttpResponse:
    """Ask for a check: the request records the intent; the check runs in the background, its page shows it."""
    require_perm(request, "events.verify_log")
    operation = services.log_verify_start(actor=request.user)
    there = reverse("core:operation", args=[operation.pk])
    return client_redirect(there) if wants_fragment(request) else redirect(there)
