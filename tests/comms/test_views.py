"""The console pages: messages table, bulk resend with a dry run, detail, contacts, previews, banner."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from console.comms import resend, services
from console.comms.classes import lookup
from console.comms.models import Alert, ContactPoint, ContactState, Delivery, FailureClass, Message, Status
from console.comms.sending import Recipient, send
from console.core.models import Operation
from console.core.operations import run_operation
from console.events.models import Event
from tests.conftest import tidy_tags

Capture = Callable[..., Any]


def make(status: str, *, recipient: str = "ada@example.com", failure: str = "", **context: Any) -> Message:
    cls = lookup("order_confirmation")
    assert cls is not None
    message = send(cls(**{**cls.sample_context, **context}), to=Recipient(recipient, email=recipient))
    Message.objects.filter(pk=message.pk).update(status=status, failure_class=failure)
    Delivery.objects.filter(message=message).update(status=status, failure_class=failure)
    message.refresh_from_db()
    return message


def test_the_messages_page_filters_and_answers_htmx_with_the_table_only(client: Client, staff: User) -> None:
    failed = make(Status.FAILED, recipient="failed@example.com", failure=FailureClass.RECIPIENT)
    make(Status.SENT, recipient="sent@example.com")
    client.force_login(staff)
    page = tidy_tags(client.get(reverse("comms:messages"), {"status": "failed"}).content.decode())
    assert "failed@example.com" in page and "sent@example.com" not in page
    assert f'name="ids" value="{failed.pk}"' in page and '<form class="filters"' in page
    fragment = client.get(
        reverse("comms:messages"), {"failure_class": "recipient"}, headers={"HX-Request": "true"}
    ).content.decode()
    assert fragment.lstrip().startswith('<div id="table-region"') and "<html" not in fragment
    assert "failed@example.com" in fragment
    bad = client.get(reverse("comms:messages"), {"since": "yesterday", "status": "nope"})
    assert bad.status_code == 200 and "Enter a valid date." in bad.content.decode()


def test_the_messages_pager_pages_without_javascript_and_swaps_only_the_table_with_htmx(
    client: Client, staff: User
) -> None:
    for n in range(30):
        make(Status.FAILED, recipient=f"r{n:02d}@example.com")
    client.force_login(staff)
    first = tidy_tags(client.get(reverse("comms:messages"), {"status": "failed", "per_page": "25"}).content.decode())
    link = re.search(r'<a rel="next"[^>]*>', first)
    assert link is not None
    attrs = {name: html.unescape(value) for name, value in re.findall(r'([\w-]+)="([^"]*)"', link.group(0))}
    assert attrs["href"].startswith("?status=failed&per_page=25&after=")
    url = reverse("comms:messages") + attrs["href"]
    assert attrs["hx-get"] == attrs["hx-push-url"] == url and attrs["hx-target"] == "#table-region"

    # Without JavaScript the browser follows the href: the next page, whole.
    second = client.get(url).content.decode()
    assert "<html" in second and '<form class="filters"' in second
    assert "r04@example.com" in second and "r05@example.com" not in second
    assert 'rel="prev"' in second and 'rel="next"' not in second
    # htmx asks for the same URL and gets only the region it swaps.
    fragment = client.get(attrs["hx-get"], headers={"HX-Request": "true"}).content.decode()
    assert fragment.lstrip().startswith('<div id="table-region"') and "<html" not in fragment
    assert '<form class="filters"' not in fragment and "r04@example.com" in fragment


def test_user_text_is_escaped_everywhere(client: Client, staff: User) -> None:
    message = make(Status.FAILED, name="<script>alert(1)</script>")
    client.force_login(staff)
    detail = client.get(reverse("comms:message", args=[message.pk])).content.decode()
    assert "<script>alert(1)</script>" not in detail
    html = client.get(reverse("comms:message_html", args=[message.pk])).content.decode()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html


def test_an_html_body_is_framed_from_its_own_url_under_its_own_sandboxing_policy(client: Client, staff: User) -> None:
    message = make(Status.SENT)
    client.force_login(staff)
    detail = tidy_tags(client.get(reverse("comms:message", args=[message.pk])).content.decode())
    url = reverse("comms:message_html", args=[message.pk])
    assert f'sandbox="" referrerpolicy="no-referrer" src="{url}"' in detail and "srcdoc" not in detail
    response = client.get(url)
    assert response.status_code == 200 and response.content.decode() == message.html_body
    assert response["Content-Type"] == "text/html; charset=utf-8"
    policy = [part.strip() for part in response["Content-Security-Policy"].split(";")]
    assert policy == [
        "default-src 'none'",
        "style-src 'unsafe-inline'",
        "img-src data:",
        "sandbox",
        "frame-ancestors 'self'",
    ]
    assert response["X-Frame-Options"] == "SAMEORIGIN"


def test_a_message_without_an_html_body_has_no_frame(client: Client, staff: User) -> None:
    message = make(Status.SENT)
    Message.objects.filter(pk=message.pk).update(html_body="")
    client.force_login(staff)
    assert "<iframe" not in client.get(reverse("comms:message", args=[message.pk])).content.decode()
    assert client.get(reverse("comms:message_html", args=[message.pk])).status_code == 404


def test_staff_without_the_permission_cannot_resend(client: Client, staff: User, dispatched: list[list[int]]) -> None:
    message = make(Status.FAILED)
    client.force_login(staff)
    assert client.post(reverse("comms:messages_resend"), {"ids": [message.pk]}).status_code == 403
    assert client.post(reverse("comms:message_resend", args=[message.pk])).status_code == 403
    assert dispatched == []


def test_resending_selected_messages_goes_through_the_queue_and_skips_sent_ones(
    client: Client, operator: User, dispatched: list[list[int]], django_capture_on_commit_callbacks: Capture
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        failed = [make(Status.FAILED, failure=FailureClass.TEMPORARY) for _ in range(2)]
        sent = make(Status.SENT)
    dispatched.clear()
    client.force_login(operator)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("comms:messages_resend"), {"ids": [m.pk for m in [*failed, sent]], "query": "status=failed"}
        )
    assert response.status_code == 302 and response["Location"] == "/messages/?status=failed"
    assert len(dispatched) == 1 and len(dispatched[0]) == 2
    for message in failed:
        message.refresh_from_db()
        assert message.status == Status.QUEUED
    sent.refresh_from_db()
    assert sent.status == Status.SENT
    resent = Event.objects.filter(type="message.resent")
    assert resent.count() == 2 and {e.actor_id for e in resent} == {operator.pk}
    assert Event.objects.get(type="message.bulk_resend").data["count"] == 2


def test_resend_all_matching_shows_a_dry_run_count_first_then_runs_as_an_operation(
    client: Client,
    operator: User,
    dispatched: list[list[int]],
    settings: Any,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}
    for _ in range(3):
        make(Status.FAILED, failure=FailureClass.POLICY)
    make(Status.SENT)
    dispatched.clear()
    client.force_login(operator)
    dry = client.post(reverse("comms:messages_resend"), {"scope": "all", "query": "failure_class=policy"})
    assert dry.status_code == 200
    html = dry.content.decode()
    assert 'data-testid="matching">3<' in html and "Resend 3 messages" in html
    assert dispatched == [] and not Event.objects.filter(type="message.resent").exists()
    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(
            reverse("comms:messages_resend"), {"scope": "all", "query": "failure_class=policy", "confirm": "1"}
        )
    operation = Operation.objects.get(kind="comms.resend")
    assert done.status_code == 302 and done["Location"] == reverse("core:operation", args=[operation.pk])
    operation.refresh_from_db()
    assert (operation.state, operation.total, operation.done) == ("succeeded", 3, 3)
    assert operation.params == {"filters": "failure_class=policy", "force": False}
    assert Message.objects.filter(status=Status.QUEUED).count() == 3
    started = Event.objects.get(type="message.bulk_resend_started")
    assert started.actor_id == operator.pk and started.data["operation_id"] == operation.pk
    assert Event.objects.get(type="message.bulk_resend").data["count"] == 3
    assert {e.actor_id for e in Event.objects.filter(type="message.resent")} == {operator.pk}
    page = client.get(done["Location"]).content.decode()
    assert "Resend all messages matching failure_class=policy" in page
    invalid = client.post(reverse("comms:messages_resend"), {"scope": "all", "query": "since=bad"})
    assert invalid.status_code == 302
    nothing = client.post(reverse("comms:messages_resend"), {"ids": ["x"]})
    assert nothing.status_code == 302


def test_a_bulk_resend_cancelled_between_batches_keeps_whole_batches(
    client: Client, operator: User, dispatched: list[list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resend, "RESEND_BATCH", 2)
    for _ in range(5):
        make(Status.FAILED, failure=FailureClass.TEMPORARY)
    client.force_login(operator)
    client.post(reverse("comms:messages_resend"), {"scope": "all", "query": "status=failed", "confirm": "1"})
    operation = Operation.objects.get(kind="comms.resend")
    original = services.resend_batch

    def cancel_during_second_batch(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if Message.objects.filter(status=Status.QUEUED).count() > 2:
            Operation.objects.filter(pk=operation.pk).update(cancel_requested_at=timezone.now())
        return result

    monkeypatch.setattr(resend, "resend_batch", cancel_during_second_batch)
    assert run_operation(operation.pk) == "cancelled"
    operation.refresh_from_db()
    assert operation.done == 2 and operation.progress["resent"] == 2
    assert Message.objects.filter(status=Status.QUEUED).count() == 2  # the cut batch was undone


def test_cancelling_a_bulk_resend_is_audited_and_needs_the_permission(
    client: Client, operator: User, staff: User, dispatched: list[list[int]]
) -> None:
    make(Status.FAILED, failure=FailureClass.TEMPORARY)
    client.force_login(operator)
    client.post(reverse("comms:messages_resend"), {"scope": "all", "query": "status=failed", "confirm": "1"})
    operation = Operation.objects.get(kind="comms.resend")
    client.force_login(staff)
    assert client.post(reverse("core:operation_cancel", args=[operation.pk])).status_code == 403
    client.force_login(operator)
    client.post(reverse("core:operation_cancel", args=[operation.pk]))
    operation.refresh_from_db()
    assert operation.state == "cancelled" and run_operation(operation.pk) == "not queued"
    assert Message.objects.filter(status=Status.QUEUED).count() == 0
    cancelled = Event.objects.get(type="message.bulk_resend_cancelled")
    assert cancelled.actor_id == operator.pk and cancelled.data["operation_id"] == operation.pk


def test_an_expired_message_is_not_resent_and_the_page_says_so(
    client: Client, operator: User, dispatched: list[list[int]]
) -> None:
    message = make(Status.FAILED, failure=FailureClass.TEMPORARY)
    Message.objects.filter(pk=message.pk).update(expires_at=message.created_at - timedelta(seconds=1))
    dispatched.clear()
    client.force_login(operator)
    response = client.post(reverse("comms:message_resend", args=[message.pk]), follow=True)
    assert "expired" in response.content.decode() and "nothing was sent" in response.content.decode()
    assert dispatched == []
    message.refresh_from_db()
    assert message.status == Status.FAILED


def test_the_detail_page_explains_and_polls_only_while_in_flight(client: Client, staff: User) -> None:
    message = make(Status.FAILED, failure=FailureClass.RECIPIENT)
    Delivery.objects.filter(message=message).update(reason="550 5.1.1 user unknown")
    client.force_login(staff)
    page = client.get(reverse("comms:message", args=[message.pk])).content.decode()
    assert "Why it was not delivered" in page and "does not exist or cannot receive mail" in page
    final = client.get(reverse("comms:message", args=[message.pk]), headers={"HX-Request": "true"})
    assert final.status_code == 286 and "hx-trigger" not in final.content.decode()
    queued = make(Status.QUEUED)
    live = client.get(reverse("comms:message", args=[queued.pk]), headers={"HX-Request": "true"})
    assert live.status_code == 200 and 'hx-trigger="every 1s"' in live.content.decode()
    assert client.get(reverse("comms:message", args=[999999])).status_code == 404


def test_contacts_can_be_reactivated_by_operators_only(client: Client, staff: User, operator: User) -> None:
    contact = ContactPoint.objects.create(
        channel="email", address="gone@example.com", state=ContactState.DEFUNCT, reason="550 5.1.1"
    )
    client.force_login(staff)
    page = client.get(reverse("comms:contacts"), {"state": "defunct"}).content.decode()
    assert "gone@example.com" in page and 'form="reactivate-form"' in page
    assert client.post(reverse("comms:contact_reactivate"), {"contact": contact.pk}).status_code == 403
    client.force_login(operator)
    response = client.post(reverse("comms:contact_reactivate"), {"contact": contact.pk})
    assert response.status_code == 302
    contact.refresh_from_db()
    assert contact.state == ContactState.ACTIVE and contact.evidence["previous_reason"] == "550 5.1.1"
    assert Event.objects.get(type="contact.reactivated").actor_id == operator.pk
    assert client.post(reverse("comms:contact_reactivate"), {"contact": "nope"}).status_code == 302


def test_previews_render_every_class_with_sample_context(client: Client, staff: User) -> None:
    client.force_login(staff)
    page = client.get(reverse("comms:previews")).content.decode()
    assert "Your order A-1042 is confirmed" in page and "Reset your password" in page
    assert "Parcelway has it" in page and "(never re-routed)" in page
    url = reverse("comms:preview_html", args=["password_reset"])
    assert f'src="{url}"' in page
    frame = client.get(url)
    assert frame.status_code == 200 and "Reset your password" in frame.content.decode()
    assert "sandbox" in frame["Content-Security-Policy"] and frame["X-Frame-Options"] == "SAMEORIGIN"
    assert client.get(reverse("comms:preview_html", args=["no_such_class"])).status_code == 404


def test_alerts_show_as_a_banner_for_staff(client: Client, staff: User) -> None:
    message = make(Status.FAILED)
    Alert.objects.create(kind="mandatory_failed", message=message, text="x")
    client.force_login(staff)
    page = client.get(reverse("core:dashboard")).content.decode()
    assert "1 mandatory message(s) could not be delivered" in page
    assert "Messages (last 24 h)" in page


def test_ids_too_large_for_the_database_are_refused_without_an_error(client: Client, operator: User) -> None:
    huge = "9" * 25
    client.force_login(operator)
    assert client.get(f"/messages/{huge}/").status_code == 404
    assert client.post(reverse("comms:messages_resend"), {"ids": [huge]}).status_code == 302
    assert client.post(reverse("comms:contact_reactivate"), {"contact": huge}).status_code == 302
    assert client.get(reverse("comms:messages"), {"after": "WzEsMl0", "mandatory": "maybe"}).status_code == 200


def test_the_mandatory_filter_reads_yes_no_and_any(client: Client, staff: User) -> None:
    make(Status.FAILED, recipient="m@example.com")
    client.force_login(staff)
    assert "m@example.com" in client.get(reverse("comms:messages"), {"mandatory": "false"}).content.decode()
    assert "m@example.com" not in client.get(reverse("comms:messages"), {"mandatory": "true"}).content.decode()
    assert "m@example.com" in client.get(reverse("comms:messages"), {"mandatory": ""}).content.decode()


def test_ids_in_unicode_digits_are_no_ids(client: Client, operator: User, dispatched: list[list[int]]) -> None:
    message = make(Status.FAILED, failure=FailureClass.TEMPORARY)
    contact = ContactPoint.objects.create(channel="email", address="gone@example.com", state=ContactState.DEFUNCT)
    client.force_login(operator)
    response = client.post(reverse("comms:messages_resend"), {"ids": ["²", "\u0661", "1²"]}, follow=True)
    assert response.status_code == 200
    assert "Select at least one message to resend." in response.content.decode()
    response = client.post(reverse("comms:contact_reactivate"), {"contact": "²"}, follow=True)
    assert response.status_code == 200
    assert "Choose a contact point to reactivate." in response.content.decode()
    message.refresh_from_db()
    contact.refresh_from_db()
    assert message.status == Status.FAILED and contact.state == ContactState.DEFUNCT and dispatched == []


def test_filters_holding_a_nul_resend_nothing(client: Client, operator: User, dispatched: list[list[int]]) -> None:
    message = make(Status.FAILED, failure=FailureClass.TEMPORARY)
    client.force_login(operator)
    for scope in ("all", "selected"):
        data = {"scope": scope, "query": "x=\x00", "ids": [message.pk], "confirm": "1"}
        response = client.post(reverse("comms:messages_resend"), data, follow=True)
        assert response.status_code == 200
        assert "The filters are not valid; nothing was resent." in response.content.decode()
    message.refresh_from_db()
    assert message.status == Status.FAILED and dispatched == []
    assert not Event.objects.filter(type="message.bulk_resend").exists()
