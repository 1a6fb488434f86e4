"""Path converters for console URLs, registered once per process when the core app is imported."""

from __future__ import annotations

from django.urls import register_converter
from django.urls.converters import StringConverter


class TextConverter(StringConverter):
    """``str`` without NUL: PostgreSQL text cannot hold it, so no stream, account or command is named by one.

    Such a URL is a 404 from the resolver, before a view hands the name to the database.
    """

    regex = r"[^/\x00]+"


# Django refuses a second registration; the app config is imported once, its ready() may run again.
register_converter(TextConverter, "text")
