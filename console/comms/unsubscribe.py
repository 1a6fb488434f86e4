"""Signed, expiring links that let a recipient turn a message category off without signing in.

A link carries the recipient, the category and the version their preference had when the message was
written, signed with the site's ``SECRET_KEY`` (``django.core.signing``, timestamped). Any change to the
preference since then bumps the version, so a link used after a change is recognised and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode

from django.core import signing
from django.urls import reverse

from console.comms.conf import comms_settings
from console.comms.models import Preference

SALT = "console.comms.unsubscribe"


class LinkInvalid(ValueError):
    """A link that cannot be used; its message is what the page tells the recipient."""


@dataclass(frozen=True)
class Link:
    recipient: str
    category: str
    version: int


def token_for(recipient: str, category: str) -> str:
    pref = Preference.objects.filter(recipient=recipient, category=category).only("version").first()
    payload = {"r": recipient, "c": category, "v": pref.version if pref else 0}
    return signing.dumps(payload, salt=SALT, compress=True)


def url_for(recipient: str, category: str) -> str:
    """The absolute unsubscribe URL for a message, or "" when the site has not set where the console lives."""
    base = comms_settings().unsubscribe_base_url
    if not base:
        return ""
    query = urlencode({"token": token_for(recipient, category)})
    return f"{base.rstrip('/')}{reverse('comms:unsubscribe')}?{query}"


def read(token: str) -> Link:
    """The link a token stands for; ``LinkInvalid`` says why it cannot be used."""
    max_age = timedelta(days=comms_settings().unsubscribe_link_days)
    try:
        payload = signing.loads(token, salt=SALT, max_age=max_age)
    except signing.SignatureExpired:
        raise LinkInvalid(
            f"This link has expired: links work for {max_age.days} days after the message was sent."
        ) from None
    except signing.BadSignature:
        raise LinkInvalid("This link is not valid: it may have been cut short or changed.") from None
    if not (
        isinstance(payload, dict)
        and isinstance(payload.get("r"), str)
        and isinstance(payload.get("c"), str)
        and isinstance(payload.get("v"), int)
    ):
        raise LinkInvalid("This link is not valid: it may have been cut short or changed.")
    return Link(recipient=payload["r"], category=payload["c"], version=payload["v"])


def stale(link: Link, pref: Preference | None) -> str:
    """Why the link no longer applies to the preference as it is now ("" when it still does)."""
    if (pref.version if pref else 0) == link.version:
        return ""
    if pref is not None and not pref.channels:
        return f"You have already turned off {link.category} messages. Nothing was changed."
    return (
        f"Your {link.category} preferences changed after this link was sent, so it no longer applies. "
        "Nothing was changed."
    )


def current(link: Link) -> Preference | None:
    return Preference.objects.filter(recipient=link.recipient, category=link.category).first()
