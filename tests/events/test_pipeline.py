"""emit(): the acting user and the request's ids come from the bound context when not given."""

from __future__ import annotations

import structlog
from django.contrib.auth.models import User

from console.events.models import Event
from console.events.pipeline import batch, emit
from tests.events.conftest import PING


def test_the_bound_user_is_the_actor_unless_one_is_given(staff: User, operator: User) -> None:
    with structlog.contextvars.bound_contextvars(user_id=staff.pk, request_id="req-9"):
        implicit = emit(PING, n=1)
        explicit = emit(PING, n=2, actor=operator)
        with batch():
            batched = emit(PING, n=3)
    assert implicit is not None and explicit is not None and batched is not None
    assert Event.objects.get(position=implicit.position).actor_id == staff.pk
    assert Event.objects.get(position=explicit.position).actor_id == operator.pk
    stored = Event.objects.get(position=batched.position)
    assert stored.actor_id == staff.pk and stored.request_id == "req-9"


def test_without_a_bound_user_there_is_no_actor(db: None) -> None:
    event = emit(PING, n=1)
    assert event is not None and Event.objects.get(position=event.position).actor_id is None
