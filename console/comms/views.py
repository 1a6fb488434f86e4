"""Console pages of comms: messages, one message, resend, contacts, preferences, previews, provider endpoint."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import time
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages as flash
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from console.comms import declarations, services
from console.comms.classes import MessageError, categories, message_classes
from console.comms.conf import comms_settings
from console.comms.explain import explain, timeline
from console.comms.models import Attempt, ContactPoint, Message, Preference
from console.comms.reports import provider_event
from console.comms.services import CancelRefused, ResendRefused
from console.comms.tables import (
    CONTACT_ORDERINGS,
    MESSAGE_ORDERINGS,
    ContactFilter,
    ContactTable,
    MessageFilter,
    messages_queryset,
)
from console.comms.unsubscribe import LinkInvalid, current, read, stale
from console.core import charts
from console.core.auth import require_perm, staff_required
from console.core.http import ConsoleRequest, client_redirect, page, wants_fragment
from console.core.inputs import whole_number
from console.core.tables import TABLE_REGION, filtered_table
from console.events import emit

RESEND_PERM = "comms.resend_message"
CANCEL_PERM = "comms.cancel_message"
REACTIVATE_PERM = "comms.reactivate_contactpoint"
PREFERENCE_PERM = "comms.change_preference"


@staff_required
@require_GET
def message_list(request: ConsoleRequest) -> HttpResponse:
    ft = filtered_table(
        request,
        queryset=messages_queryset(),
        filterset_class=MessageFilter,
        table_class=None,
        orderings=MESSAGE_ORDERINGS,
        default_sort="newest",
    )
    context = {
        "ft": ft,
        "target_url": reverse("comms:messages"),
        "query": ft.query.urlencode(),
        "charts": charts.region(request, "messages"),
    }
    return page(request, "comms/messages.html", context, fragment="table-region")


@staff_required
@require_POST
def message_bulk(request: ConsoleRequest) -> HttpResponse:
    """Resend the selected messages, or every message matching the filters after a dry-run count."""
    require_perm(request, RESEND_PERM)
    force = request.POST.get("force") == "1"
    query = request.POST.get("query", "")
    if "\x00" in query:
        # The filters are kept in the audit event, whose text PostgreSQL cannot hold with NUL; no filter has one.
        flash.error(request, "The filters are not valid; nothing was resent.")
        return redirect("comms:messages")
    back = reverse("comms:messages") + (f"?{query}" if query else "")
    if request.POST.get("scope") == "all":
        filterset = MessageFilter(QueryDict(query), queryset=Message.objects.all())
        if not filterset.is_valid():
            flash.error(request, "The filters are not valid; nothing was resent.")
            return redirect(back)
        matching = filterset.qs
    else:
        ids = [pk for pk in map(whole_number, request.POST.getlist("ids")) if pk is not None]
        if not ids:
            flash.error(request, "Select at least one message to resend.")
            return redirect(back)
        matching = Message.objects.filter(pk__in=ids)
    if request.POST.get("scope") == "all":
        if request.POST.get("confirm") != "1":
            counts = {
                "matching": matching.count(),
                "resendable": matching.resendable(force=force).count(),
            }
            return render(request, "comms/resend_confirm.html", {"counts": counts, "query": query, "force": force})
        # The request only records the intent: the operation counts and resends in the background.
        operation = services.message_bulk_resend_start(filters=query, actor=request.user, force=force)
        there = reverse("core:operation", args=[operation.pk])
        return client_redirect(there) if wants_fragment(request) else redirect(there)
    result = services.message_bulk_resend(
        messages=matching.resendable(force=force), actor=request.user, force=force, filters=query
    )
    skipped = matching.count() - matching.resendable(force=force).count() + result.skipped
    text = f"{result.resent} message(s) queued for resending"
    if skipped:
        text += f"; {skipped} skipped (in flight, already delivered, expired or without a usable address)"
    flash.success(request, text + ".")
    return client_redirect(back) if wants_fragment(request) else redirect(back)


@staff_required
@require_GET
def message_detail(request: ConsoleRequest, pk: int) -> HttpResponse:
    message = get_object_or_404(Message.objects.select_related("created_by"), pk=pk)
    deliveries = list(message.deliveries.order_by("created_at", "pk"))
    attempts = list(Attempt.objects.filter(delivery__message=message).order_by("at", "pk"))
    context = {
        "message": message,
        "deliveries": deliveries,
        "attempts": attempts,
        "why": explain(message, deliveries, attempts),
        "steps": timeline(message, deliveries, attempts),
        "in_flight": message.in_flight,
        "can_resend": request.user.has_perm(RESEND_PERM),
        "can_cancel": request.user.has_perm(CANCEL_PERM),
    }
    return page(request, "comms/message_detail.html", context, fragment="state", stop_polling=not message.in_flight)


# A message's HTML is someone else's markup. It is shown in a sandboxed frame loaded from its own URL under
# its own policy: inline styles as mail clients allow them, no scripts, nothing fetched from anywhere (no
# tracking pixels). A srcdoc frame would inherit the console page's policy, which forbids inline styles.
HTML_BODY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox; frame-ancestors 'self'"


def _html_body(html: str) -> HttpResponse:
    if not html:
        raise Http404("There is no HTML body.")
    response = HttpResponse(html, content_type="text/html; charset=utf-8")
    # Set here, so the site's own policy (Django's CSP middleware keeps a header a view set) does not apply.
    response["Content-Security-Policy"] = HTML_BODY_POLICY
    return response


@staff_required
@require_GET
@xframe_options_sameorigin
def message_html(request: ConsoleRequest, pk: int) -> HttpResponse:
    """The HTML body of one message, for the frame on its page."""
    message = get_object_or_404(Message.objects.only("html_body"), pk=pk)
    return _html_body(message.html_body)


@staff_required
@require_GET
@xframe_options_sameorigin
def preview_html(request: ConsoleRequest, key: str) -> HttpResponse:
    """A message class's HTML body rendered with its sample context, for the frame on the previews page."""
    cls = message_classes.get(key)
    if cls is None:
        raise Http404("No message class has this key.")
    try:
        rendered = cls.sample().render()
    except MessageError as exc:
        raise Http404(str(exc)) from None
    return _html_body(rendered.html)


@staff_required
@require_POST
def message_resend(request: ConsoleRequest, pk: int) -> HttpResponse:
    require_perm(request, RESEND_PERM)
    message = get_object_or_404(Message, pk=pk)
    try:
        services.message_resend(message=message, actor=request.user, force=request.POST.get("force") == "1")
    except ResendRefused as exc:
        flash.error(request, str(exc))
    else:
        flash.success(request, f"Message #{message.pk} queued for resending.")
    return redirect("comms:message", pk=message.pk)


@staff_required
@require_POST
def message_cancel(request: ConsoleRequest, pk: int) -> HttpResponse:
    require_perm(request, CANCEL_PERM)
    message = get_object_or_404(Message, pk=pk)
    try:
        services.message_cancel(message=message, actor=request.user)
    except CancelRefused as exc:
        flash.error(request, f"Not cancelled: {exc}.")
    else:
        flash.success(request, f"Message #{message.pk} cancelled; it will not be sent.")
    return redirect("comms:message", pk=message.pk)


@staff_required
@require_POST
def message_bulk_cancel(request: ConsoleRequest) -> HttpResponse:
    """Cancel the selected messages; those already sent or being handed over are reported, not changed."""
    require_perm(request, CANCEL_PERM)
    # Re-encoded, so whatever the form carried cannot break the Location header.
    query = QueryDict(request.POST.get("query", "")).urlencode()
    back = reverse("comms:messages") + (f"?{query}" if query else "")
    ids = [pk for pk in map(whole_number, request.POST.getlist("ids")) if pk is not None]
    if not ids:
        flash.error(request, "Select at least one message to cancel.")
    else:
        result = services.message_bulk_cancel(messages=Message.objects.filter(pk__in=ids), actor=request.user)
        text = f"{result.cancelled} message(s) cancelled"
        if result.refused:
            text += f"; {len(result.refused)} not cancelled (already sent, being sent or not active)"
        flash.success(request, text + ".")
    return client_redirect(back) if wants_fragment(request) else redirect(back)


@staff_required
@require_GET
def contact_list(request: ConsoleRequest) -> HttpResponse:
    ft = filtered_table(
        request,
        queryset=ContactPoint.objects.all(),
        filterset_class=ContactFilter,
        table_class=ContactTable,
        orderings=CONTACT_ORDERINGS,
        default_sort="recent",
    )
    context = {"ft": ft, "target_url": reverse("comms:contacts")}
    return page(request, "comms/contacts.html", context, fragment=TABLE_REGION)


@staff_required
@require_POST
def contact_reactivate(request: ConsoleRequest) -> HttpResponse:
    require_perm(request, REACTIVATE_PERM)
    pk = whole_number(request.POST.get("contact"))
    if pk is None:
        flash.error(request, "Choose a contact point to reactivate.")
        return redirect("comms:contacts")
    contact = get_object_or_404(ContactPoint, pk=pk)
    contact = services.contact_reactivate(contact=contact, actor=request.user)
    flash.success(request, f"{contact.address} is active again.")
    return redirect(reverse("comms:contacts") + "?" + request.POST.get("query", ""))


def _recipient_key(text: str | None) -> tuple[str, str]:
    """The recipient key a form names, and what is wrong with it ("" when nothing is)."""
    key = (text or "").strip()
    if len(key) > 200 or not key.isprintable():
        return "", "A recipient key is at most 200 printable characters."
    return key, ""


@staff_required
@require_http_methods(["GET", "POST"])
def preferences(request: ConsoleRequest) -> HttpResponse:
    """One recipient's channels per category: shown to staff, changed by those who hold the permission."""
    source = request.POST if request.method == "POST" else request.GET
    recipient, error = _recipient_key(source.get("recipient"))
    can_change = request.user.has_perm(PREFERENCE_PERM)
    saved = {p.category: p for p in Preference.objects.filter(recipient=recipient)} if recipient else {}
    rows: list[dict[str, Any]] = []
    for category in categories():
        pref = saved.get(category.name)
        cells = [
            {"channel": c, "allowed": pref is None or pref.allows(c), "value": f"{category.name}:{c}"}
            for c in category.channels
        ]
        rows.append({"category": category, "cells": cells})
    if request.method == "POST" and recipient:
        require_perm(request, PREFERENCE_PERM)
        wanted = set(request.POST.getlist("allow"))
        changed = 0
        for row in rows:
            for cell in row["cells"]:
                if (cell["value"] in wanted) != cell["allowed"]:
                    services.set_preference(
                        recipient=recipient,
                        category=row["category"].name,
                        channel=cell["channel"],
                        allowed=not cell["allowed"],
                        actor=request.user,
                        source="console",
                    )
                    changed += 1
        flash.success(request, f"{changed} preference(s) changed for {recipient}." if changed else "Nothing changed.")
        return redirect(reverse("comms:preferences") + "?" + urlencode({"recipient": recipient}))
    context = {"recipient": recipient, "error": error, "rows": rows if recipient else [], "can_change": can_change}
    return page(request, "comms/preferences.html", context, fragment="grid", status=400 if error else 200)


@staff_required
@require_GET
def previews(request: ConsoleRequest) -> HttpResponse:
    items: list[dict[str, Any]] = []
    for key, cls in sorted(message_classes.items()):
        # Plain values: the template engine would call a class it is handed.
        item: dict[str, Any] = {
            "key": key,
            "label": cls.label or key,
            "channels": cls.channels,
            "fallback": cls.fallback,
            "mandatory": cls.mandatory,
            "category": cls.category,
            "ttl": cls.ttl,
        }
        try:
            item["rendered"] = cls.sample().render()
        except MessageError as exc:
            item["error"] = str(exc)
        items.append(item)
    return render(request, "comms/previews.html", {"items": items})


# --- the recipient's unsubscribe link -------------------------------------------------------------------


# Public: the signed token is the only authority, no session is read, so there is nothing for CSRF to forge;
# RFC 8058 one-click unsubscribe is a POST from the mail provider, which has no CSRF cookie.
@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest) -> HttpResponse:
    """GET shows what the link would turn off (mail scanners follow links; they must change nothing);
    POST turns it off, from the page's button or a mail client's one-click ``List-Unsubscribe-Post``."""
    token = request.GET.get("token") or request.POST.get("token") or ""
    context: dict[str, Any] = {"token": token}
    try:
        link = read(token)
        if request.method == "POST":
            services.unsubscribe(link=link)
            context["done"] = True
        elif problem := stale(link, current(link)):
            raise LinkInvalid(problem)
    except LinkInvalid as exc:
        context["problem"] = str(exc)
        return render(request, "comms/unsubscribe.html", context, status=400)
    context["link"] = link
    return render(request, "comms/unsubscribe.html", context)


# --- provider events -------------------------------------------------------------------------------------


# A signature is the hex of an HMAC-SHA256: exactly this, or it is malformed.
HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
REPORTED = ("delivered", "bounced", "rejected", "complained", "deferred")
# Deeper than any provider's report; stops a crafted body from exhausting the stack when it is stored.
MAX_REPORT_DEPTH = 20


def _verified(request: HttpRequest, secret: str) -> str | None:
    """The problem with the request's signature, or None when it verifies.

    Signed content is ``<timestamp>.<body>`` (HMAC-SHA256, hex) in ``X-Console-Signature: t=<ts>,v1=<hex>``;
    a timestamp more than five minutes away is refused so a captured request cannot be replayed later.
    """
    header = request.headers.get("X-Console-Signature", "")
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    signed_at, signature = parts.get("t", ""), parts.get("v1", "")
    timestamp = whole_number(signed_at)
    if timestamp is None or not HEX_DIGEST.fullmatch(signature):
        return "missing or malformed signature"
    if abs(time.time() - timestamp) > 300:
        return "timestamp too far from now"
    expected = hmac.new(secret.encode(), signed_at.encode() + b"." + request.body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return "signature does not match"
    return None


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The ``X-Console-Signature`` value for ``body``: what providers (and tests) send."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={digest}"


class MalformedReport(ValueError):
    """A signed provider report that cannot be applied; its message is the reason the 400 gives."""


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text} is not a finite number")
    return number


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _storable(value: Any, depth: int = 0) -> str | None:
    """Why ``value`` cannot be kept as the report's payload: PostgreSQL refuses NUL in text, and depth is bounded."""
    if depth > MAX_REPORT_DEPTH:
        return f"payload is nested more than {MAX_REPORT_DEPTH} levels deep"
    if isinstance(value, str):
        return "text in the payload must not contain NUL characters" if "\x00" in value else None
    if isinstance(value, dict):
        items = [*value.keys(), *value.values()]
    elif isinstance(value, list):
        items = value
    else:
        return None
    return next((problem for item in items if (problem := _storable(item, depth + 1))), None)


def _text(payload: dict[str, Any], name: str, default: str = "") -> str:
    value = payload.get(name, default)
    if not isinstance(value, str):
        raise MalformedReport(f"{name} must be a string")
    return value


def _id(metadata: dict[str, Any], name: str) -> int | str | None:
    """One of our ids echoed back, as a JSON number or a string of digits; absent is fine.

    A well-formed number that no row has (too large to be an id) is not malformed: it matches nothing.
    """
    value = metadata.get(name)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return value
    raise MalformedReport(f"metadata.{name} must be a whole number")


def _report(body: bytes) -> dict[str, Any]:
    """The arguments of ``provider_event`` from a report's body; ``MalformedReport`` says what is wrong."""
    try:
        payload = json.loads(body, parse_constant=_not_json, parse_float=_finite)
    except (ValueError, RecursionError):
        raise MalformedReport("body is not JSON") from None
    if not isinstance(payload, dict):
        raise MalformedReport("body must be a JSON object")
    if problem := _storable(payload):
        raise MalformedReport(problem)
    event_id = payload.get("event_id")
    if not isinstance(event_id, str) or not event_id:
        raise MalformedReport("event_id is required")
    event_type = payload.get("event")
    if not isinstance(event_type, str) or event_type not in REPORTED:
        raise MalformedReport(f"event must be one of {', '.join(REPORTED)}")
    metadata = payload.get("metadata", {})
    if not isinstance(metadata, dict):
        raise MalformedReport("metadata must be an object")
    code = payload.get("code", "")
    if not isinstance(code, str | int) or isinstance(code, bool):
        raise MalformedReport("code must be a string or a number")
    return {
        "source": _text(payload, "source", "inbound")[:50],
        "event_id": event_id,
        "event_type": event_type,
        "provider_id": _text(payload, "provider_id")[:200],
        "message_id": _id(metadata, "console_message_id"),
        "delivery_id": _id(metadata, "console_delivery_id"),
        "description": _text(payload, "description")[:500],
        "code": str(code)[:3],
        "payload": payload,
    }


@csrf_exempt
@require_POST
def inbound(request: HttpRequest) -> HttpResponse:
    """Provider delivery reports, authenticated by signature; anything that does not verify changes nothing."""
    secret = comms_settings().inbound_secret
    if not secret:
        return HttpResponseBadRequest("inbound provider events are not configured")
    problem = _verified(request, secret)
    if problem:
        emit(declarations.PROVIDER_EVENT_REJECTED, reason=problem)
        return HttpResponseBadRequest(problem)
    try:
        report = _report(request.body)
    except MalformedReport as exc:
        return HttpResponseBadRequest(str(exc))
    return JsonResponse({"result": provider_event(**report)})
