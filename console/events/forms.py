from __future__ import annotations

from typing import Any

from django import forms

from console.core.inputs import MAX_WHOLE_NUMBER, representable_time
from console.events.conf import events_settings
from console.events.models import WebhookEndpoint
from console.events.webhook_replay import ReplayRange, by_positions, by_time
from console.events.webhook_sender import published_types
from console.events.webhook_urls import UnsafeURL, check_url


class WebhookForm(forms.Form):
    name = forms.CharField(max_length=100)
    url = forms.URLField(label="URL", max_length=500, assume_scheme="https")
    event_types = forms.MultipleChoiceField(
        label="Event types",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Leave all unticked to receive every published event type.",
    )
    active = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["event_types"]
        assert isinstance(field, forms.MultipleChoiceField)
        field.choices = [(name, name) for name in sorted(published_types())]

    def clean_url(self) -> str:
        url = str(self.cleaned_data["url"])
        try:
            check_url(url)
        except UnsafeURL as exc:
            raise forms.ValidationError(str(exc)) from exc
        return url


class EnableForm(forms.Form):
    resume = forms.TypedChoiceField(
        label="Deliver",
        choices=[
            ("1", "from where it stopped: everything published while it was off, and what was waiting"),
            ("0", "from now: give up what was waiting and skip what was published meanwhile"),
        ],
        coerce=lambda value: value == "1",
        initial="1",
        widget=forms.RadioSelect,
    )


class RotateForm(forms.Form):
    overlap_hours = forms.FloatField(
        label="Keep signing with the old secret for (hours)",
        min_value=0,
        max_value=24 * 30,
        help_text="Receivers accept either secret meanwhile; 0 stops the old one at once.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["overlap_hours"].initial = events_settings().webhook_secret_overlap_hours


class ReplayForm(forms.Form):
    """A position range or a time range; an open end is the start or the end of the log."""

    first = forms.IntegerField(label="From position", required=False, min_value=1, max_value=MAX_WHOLE_NUMBER)
    last = forms.IntegerField(label="To position", required=False, min_value=1, max_value=MAX_WHOLE_NUMBER)
    since = forms.DateTimeField(
        label="Or recorded from", required=False, validators=[representable_time], help_text="YYYY-MM-DD HH:MM"
    )
    until = forms.DateTimeField(label="Recorded until", required=False, validators=[representable_time])
    # The count the user was shown and agreed to, when the range is large.
    confirmed = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)

    def __init__(self, *args: Any, endpoint: WebhookEndpoint, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.endpoint = endpoint
        self.replay: ReplayRange | None = None
        self.count = 0
        self.needs_confirmation = False

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        first, last, since, until = data.get("first"), data.get("last"), data.get("since"), data.get("until")
        positions, times = first is not None or last is not None, since is not None or until is not None
        if positions == times:
            raise forms.ValidationError(
                "Give a position range or a time range (one or both ends), not both."
                if positions
                else "Give a position range or a time range: at least one end."
            )
        if positions and first is not None and last is not None and first > last:
            raise forms.ValidationError(f"The range is reversed: position {first} comes after {last}.")
        if times and since is not None and until is not None and since > until:
            raise forms.ValidationError("The range is reversed: its start is after its end.")
        replay = by_positions(self.endpoint, first, last) if positions else by_time(self.endpoint, since, until)
        conf = events_settings()
        count = replay.count(conf.webhook_replay_max_events)
        if count == 0:
            raise forms.ValidationError(
                "No event in this range is of a type this endpoint receives: nothing to replay."
            )
        if count > conf.webhook_replay_max_events:
            raise forms.ValidationError(
                f"More than {conf.webhook_replay_max_events:,} events match: replay a narrower range "
                "(WEBHOOK_REPLAY_MAX_EVENTS)."
            )
        if count > conf.webhook_replay_confirm_above and data.get("confirmed") != count:
            # The form comes back with this count in it to agree to: the next submit carries it back.
            self.needs_confirmation, self.count = True, count
            raise forms.ValidationError(f"This replays {count:,} events. Submit again to confirm.")
        self.replay, self.count = replay, count
        return data
