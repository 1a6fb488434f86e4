"""The demo seed: failures of every class, idempotent, and the console_demo option that sizes it."""

from __future__ import annotations

from io import StringIO

from django.core.management import call_command

from console.comms.models import Attempt, ContactPoint, ContactState, FailureClass, Message, Status
from console.demo.seeds import SeedOptions
from console.demo.seeds.comms import seed


def test_it_seeds_failures_of_every_class_once(db: None) -> None:
    summary = seed(SeedOptions(events=0, messages=48, verbosity=0))
    assert summary.startswith("48 message(s) created")
    classes = set(Message.objects.filter(status=Status.FAILED).values_list("failure_class", flat=True))
    assert {
        FailureClass.TEMPORARY,
        FailureClass.RECIPIENT,
        FailureClass.POLICY,
        FailureClass.INFRASTRUCTURE,
        FailureClass.EXPIRED,
        FailureClass.COMPLAINED,
    } <= classes
    assert Message.objects.filter(status=Status.DEFERRED).exists()
    assert Message.objects.filter(mandatory=True, status=Status.FAILED).exists()
    assert ContactPoint.objects.filter(state=ContactState.DEFUNCT).exists()
    attempts = Attempt.objects.count()

    again = seed(SeedOptions(events=0, messages=48, verbosity=0))
    assert again.startswith("0 message(s) created (48 already there)")
    assert Message.objects.count() == 48 and Attempt.objects.count() == attempts


def test_console_demo_sizes_the_message_history(db: None) -> None:
    call_command("console_demo", "--messages", "30", "--events", "0", stdout=StringIO())
    assert Message.objects.filter(idempotency_key__startswith="demo-").count() == 30
