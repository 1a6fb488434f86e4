"""Preferences: per recipient, category and channel; mandatory messages bypass them; the console page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from console.comms.classes import categories, lookup
from console.comms.models import FailureClass, Preference, Status
from console.comms.sending import Recipient, send
from console.comms.services import set_preference
from console.events.models import Event

TO = Recipient("u1", email="u1@example.com", phone="+447700900111")


def order() -> object:
    cls = lookup("order_confirmation")
    assert cls is not None
    return cls.sample()


def test_it_skips_an_opted_out_channel_with_the_reason_and_sends_on_the_next(db: None) -> None:
    set_preference(recipient="u1", category="orders", channel="email", allowed=False)
    message = send(order(), to=TO)  # type: ignore[arg-type]
    assert message.channels == ["sms"] and message.status == Status.QUEUED
    skipped = message.deliveries.get(status=Status.SKIPPED)
    assert skipped.channel == "email" and skipped.failure_class == FailureClass.PREFERENCE
    assert skipped.reason == "the recipient turned email off for orders messages"
    assert message.deliveries.get(status=Status.QUEUED).channel == "sms"


def test_it_skips_the_message_when_every_channel_is_off(db: None) -> None:
    for channel in ("email", "sms"):
        set_preference(recipient="u1", category="orders", channel=channel, allowed=False)
    message = send(order(), to=TO)  # type: ignore[arg-type]
    assert message.status == Status.SKIPPED and message.failure_class == FailureClass.PREFERENCE
    assert set(message.deliveries.values_list("failure_class", flat=True)) == {FailureClass.PREFERENCE}


def test_mandatory_messages_bypass_preferences(db: None) -> None:
    set_preference(recipient="u1", category="security", channel="email", allowed=False)
    cls = lookup("password_reset")
    assert cls is not None
    message = send(cls.sample(), to=TO)
    assert message.status == Status.QUEUED and message.channels == ["email"]
    assert not message.deliveries.filter(status=Status.SKIPPED).exists()


def test_set_preference_audits_each_change_once_and_bumps_the_version(db: None, operator: User) -> None:
    pref = set_preference(recipient="u1", category="orders", channel="sms", allowed=False, actor=operator)
    assert pref.channels == ["email", "push"] and pref.version == 1
    again = set_preference(recipient="u1", category="orders", channel="sms", allowed=False, actor=operator)
    assert again.version == 1
    back = set_preference(recipient="u1", category="orders", channel="sms", allowed=True)
    assert back.channels == ["email", "sms", "push"] and back.version == 2
    events = list(Event.objects.filter(type="preference.changed").order_by("position"))
    assert [(e.actor_id, e.data["allowed"], e.data["source"]) for e in events] == [
        (operator.pk, False, "api"),
        (None, True, "api"),
    ]


@pytest.mark.parametrize("bad", [{"channel": "fax"}, {"recipient": ""}, {"category": "x" * 51}])
def test_set_preference_refuses_what_it_cannot_store(db: None, bad: dict[str, str]) -> None:
    arguments = {"recipient": "u1", "category": "orders", "channel": "email", **bad}
    with pytest.raises(ValueError):
        set_preference(**arguments, allowed=False)  # type: ignore[arg-type]
    assert not Preference.objects.exists()


def test_the_page_shows_a_recipients_channels_per_category(client: Client, staff: User) -> None:
    set_preference(recipient="u1", category="orders", channel="sms", allowed=False)
    client.force_login(staff)
    page = client.get(reverse("comms:preferences"), {"recipient": "u1"}).content.decode()
    assert 'value="orders:email"' in page and 'value="orders:push"' in page
    assert "mandatory: always sent" in page
    assert "You need the “comms.change_preference” permission" in page and "disabled" in page
    fragment = client.get(
        reverse("comms:preferences"), {"recipient": "u1"}, headers={"HX-Request": "true"}
    ).content.decode()
    assert fragment.lstrip().startswith('<div id="preference-grid"') and "<html" not in fragment


def test_staff_without_the_permission_cannot_change_preferences(client: Client, staff: User) -> None:
    client.force_login(staff)
    response = client.post(reverse("comms:preferences"), {"recipient": "u1", "allow": []})
    assert response.status_code == 403 and not Preference.objects.exists()


def test_the_page_changes_preferences_and_names_the_actor(client: Client, operator: User) -> None:
    client.force_login(operator)
    # Every box stays ticked but orders:sms and orders:push (other tests may register more categories).
    ticked = [f"{c.name}:{channel}" for c in categories() for channel in c.channels]
    allow = [value for value in ticked if value not in ("orders:sms", "orders:push")]
    response = client.post(reverse("comms:preferences"), {"recipient": "u1", "allow": allow}, follow=True)
    assert "2 preference(s) changed for u1." in response.content.decode()
    assert Preference.objects.get(recipient="u1", category="orders").channels == ["email"]
    events = Event.objects.filter(type="preference.changed")
    assert {e.data["channel"] for e in events} == {"sms", "push"}
    assert {(e.actor_id, e.data["source"]) for e in events} == {(operator.pk, "console")}


def test_a_bad_recipient_key_says_what_is_wrong(client: Client, operator: User) -> None:
    client.force_login(operator)
    response = client.get(reverse("comms:preferences"), {"recipient": "x" * 201})
    assert response.status_code == 400
    assert "A recipient key is at most 200 printable characters." in response.content.decode()
    posted = client.post(reverse("comms:preferences"), {"recipient": "a\x01b", "allow": []})
    assert posted.status_code == 400 and not Preference.objects.exists()


def test_turning_a_channel_off_moves_a_waiting_message_to_its_next_channel(db: None) -> None:
    at = timezone.now() + timedelta(hours=2)
    message = send(order(), to=TO, send_at=at)  # type: ignore[arg-type]
    cls = lookup("password_reset")
    assert cls is not None
    reset = send(cls.sample(), to=TO, send_at=at)
    set_preference(recipient="u1", category="orders", channel="email", allowed=False)
    message.refresh_from_db()
    assert [(d.channel, d.status, d.failure_class) for d in message.deliveries.order_by("pk")] == [
        ("email", Status.SKIPPED, FailureClass.PREFERENCE),
        ("sms", Status.QUEUED, ""),
    ]
    assert message.deliveries.get(channel="sms").next_attempt_at == at  # still when it was due
    assert message.status == Status.QUEUED and message.channel == "sms"
    set_preference(recipient="u1", category="orders", channel="sms", allowed=False)
    message.refresh_from_db()
    assert message.status == Status.SKIPPED and message.failure_class == FailureClass.PREFERENCE
    set_preference(recipient="u1", category="security", channel="email", allowed=False)
    assert reset.deliveries.get().status == Status.QUEUED  # mandatory: preferences never stop it
