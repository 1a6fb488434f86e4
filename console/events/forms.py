from __future__ import annotations

from typing import Any

from django import forms

from console.events.conf import events_settings
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
