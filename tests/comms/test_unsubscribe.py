"""The signed link a message carries to turn its category off, and the List-Unsubscribe headers of emails."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import signing
from django.test import Client

from console.comms.classes import lookup
from console.comms.models import FailureClass, Message, Preference, Status
from console.comms.sending import Recipient, send
from console.comms.services import set_preference
from console.comms.unsubscribe import SALT
from console.events.models import Event
from tests.comms.smtp import SMTPServer

Capture = Callable[..., Any]
BASE = "https://shop.example.com"
TO = Recipient("u1", email="ada@example.com")


@pytest.fixture
def linked(settings: Any) -> None:
    settings.CONSOLE_COMMS = {**getattr(settings, "CONSOLE_COMMS", {}), "UNSUBSCRIBE_BASE_URL": BASE}


def sample(key: str) -> Any:
    cls = lookup(key)
    assert cls is not None
    return cls.sample()


def path_of(message: Message) -> str:
    parts = urlsplit(message.unsubscribe_url)
    assert f"{parts.scheme}://{parts.netloc}" == BASE
    return f"{parts.path}?{parts.query}"


def test_a_non_mandatory_message_carries_the_link_and_a_mandatory_one_does_not(db: None, linked: None) -> None:
    message = send(sample("order_confirmation"), to=TO)
    assert message.unsubscribe_url.startswith(f"{BASE}/comms/unsubscribe/?token=")
    assert message.unsubscribe_url in message.text_body and "Stop order emails" in message.html_body
    reset = send(sample("password_reset"), to=TO)
    assert reset.unsubscribe_url == "" and "unsubscribe" not in reset.text_body


def test_without_a_base_url_there_is_no_link(db: None) -> None:
    message = send(sample("order_confirmation"), to=TO)
    assert message.unsubscribe_url == "" and "No more order emails" not in message.text_body


def test_emails_carry_list_unsubscribe_and_one_click_headers(
    smtp: SMTPServer, linked: None, inline_tasks: None, db: None, django_capture_on_commit_callbacks: Capture
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        message = send(sample("order_confirmation"), to=TO)
        reset = send(sample("password_reset"), to=Recipient("u2", email="bob@example.com"))
    received = smtp.handler.to("ada@example.com")[0]
    assert received["List-Unsubscribe"] == f"<{message.unsubscribe_url}>"
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert smtp.handler.to("bob@example.com")[0]["List-Unsubscribe"] is None
    assert reset.mandatory


def test_following_the_link_asks_first_then_turns_the_category_off(client: Client, db: None, linked: None) -> None:
    message = send(sample("order_confirmation"), to=TO)
    shown = client.get(path_of(message))
    assert shown.status_code == 200 and "Turn off orders messages" in shown.content.decode()
    assert not Preference.objects.exists()  # a mail scanner following the link changes nothing
    token = parse_qs(urlsplit(message.unsubscribe_url).query)["token"][0]
    done = client.post("/comms/unsubscribe/", {"token": token})
    assert done.status_code == 200 and "You will no longer receive orders messages" in done.content.decode()
    assert Preference.objects.get(recipient="u1", category="orders").channels == []
    message.refresh_from_db()  # not sent yet: it honours the change
    assert message.status == Status.SKIPPED and message.failure_class == FailureClass.PREFERENCE
    events = Event.objects.filter(type="preference.changed")
    assert {(e.actor_id, e.data["source"], e.data["allowed"]) for e in events} == {(None, "link", False)}
    later = send(sample("order_confirmation"), to=TO)
    assert later.status == Status.SKIPPED and later.failure_class == FailureClass.PREFERENCE


def test_a_mail_clients_one_click_post_turns_it_off(client: Client, db: None, linked: None) -> None:
    message = send(sample("order_confirmation"), to=TO)
    response = client.post(path_of(message), {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert Preference.objects.get(recipient="u1", category="orders").channels == []


def test_a_reused_link_says_it_is_already_done_and_changes_nothing(client: Client, db: None, linked: None) -> None:
    message = send(sample("order_confirmation"), to=TO)
    client.post(path_of(message))
    for method in (client.get, client.post):
        again = method(path_of(message))
        assert again.status_code == 400
        assert "You have already turned off orders messages. Nothing was changed." in again.content.decode()
    assert Event.objects.filter(type="preference.changed").count() == 3  # email, sms and push, once each


def test_a_link_issued_before_a_change_no_longer_applies(client: Client, db: None, linked: None) -> None:
    message = send(sample("order_confirmation"), to=TO)
    set_preference(recipient="u1", category="orders", channel="push", allowed=False)
    for method in (client.get, client.post):
        response = method(path_of(message))
        assert response.status_code == 400
        assert "preferences changed after this link was sent" in response.content.decode()
    assert Preference.objects.get(recipient="u1", category="orders").channels == ["email", "sms"]


def test_a_tampered_link_is_refused(client: Client, db: None, linked: None) -> None:
    message = send(sample("order_confirmation"), to=TO)
    forged = signing.dumps({"r": "someone-else", "c": "orders", "v": 0}, salt="another.salt", compress=True)
    for token in (path_of(message)[:-3], f"/comms/unsubscribe/?token={forged}", "/comms/unsubscribe/"):
        response = client.post(token)
        assert response.status_code == 400
        assert "This link is not valid" in response.content.decode()
    assert not Preference.objects.exists()


def test_an_expired_link_is_refused(
    client: Client, db: None, linked: None, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.CONSOLE_COMMS = {**settings.CONSOLE_COMMS, "UNSUBSCRIBE_LINK_DAYS": 30}
    real = time.time
    with monkeypatch.context() as patch:
        patch.setattr(time, "time", lambda: real() - 31 * 86400)
        old = signing.dumps({"r": "u1", "c": "orders", "v": 0}, salt=SALT, compress=True)
    response = client.post("/comms/unsubscribe/", {"token": old})
    assert response.status_code == 400
    assert "This link has expired: links work for 30 days" in response.content.decode()
    assert not Preference.objects.exists()
