from __future__ import annotations

from datetime import datetime
from typing import Any

from django import forms

from console.core.inputs import MAX_WHOLE_NUMBER
from console.eventsourcing.services import RebuildError, parse_as_of


class RebuildForm(forms.Form):
    """Rebuild now, or as of a past position or time, into a copy or (confirmed) into the live tables."""

    TARGETS = (("copy", "a copy beside the live read model"), ("live", "the live read model"))

    as_of_position = forms.IntegerField(required=False, min_value=1, max_value=MAX_WHOLE_NUMBER, label="As of position")
    as_of_time = forms.CharField(
        required=False, max_length=40, label="As of time", help_text="ISO 8601, e.g. 2026-01-31T17:45"
    )
    target = forms.ChoiceField(choices=TARGETS, required=False, initial="copy", label="Into")
    confirm = forms.BooleanField(required=False, label="Yes, replace the live read model")

    def clean_as_of_time(self) -> datetime | None:
        value = self.cleaned_data.get("as_of_time") or ""
        if not value.strip():
            return None
        try:
            return parse_as_of(value)
        except RebuildError as exc:
            raise forms.ValidationError(str(exc)) from exc

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        position, moment = data.get("as_of_position"), data.get("as_of_time")
        if position is not None and moment is not None:
            self.add_error("as_of_time", "Give a position or a time, not both.")
        if (position is not None or moment is not None) and data.get("target") == "live" and not data.get("confirm"):
            self.add_error("confirm", "Confirm that the live read model should be replaced.")
        return data

    @property
    def is_as_of(self) -> bool:
        return self.cleaned_data.get("as_of_position") is not None or self.cleaned_data.get("as_of_time") is not None
