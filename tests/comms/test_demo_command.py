from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from console.comms.models import Message, Status


def test_demo_send_messages_queues_a_mix_through_the_outbox(db: None) -> None:
    out = StringIO()
    call_command("demo_send_messages", "--count", "6", stdout=out)
    assert "6 message(s) queued" in out.getvalue()
    types = sorted(Message.objects.values_list("message_type", flat=True))
    assert types == ["order_confirmation"] * 2 + ["password_reset"] * 2 + ["shipping_update"] * 2
    assert set(Message.objects.values_list("status", flat=True)) == {Status.QUEUED}
    with pytest.raises(CommandError):
        call_command("demo_send_messages", "--count", "0")
