"""Message classes: one per message type, rendered from templates and checked when the message is created.

A class names its templates, its channels in order of preference, whether it may fall back to a later
channel, whether it is mandatory, how long it stays worth sending, its preference category and the context
it needs. Rendering is strict: a missing context value or a template error raises ``MessageError`` naming
the class and the variable, in the caller of ``send()``, never later in a worker.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import time, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from django.conf import settings
from django.template import Context, Engine, TemplateDoesNotExist, TemplateSyntaxError

if TYPE_CHECKING:
    from console.comms.models import Message


class MessageError(ValueError):
    """A message that cannot be created: bad context, a template error, an unknown channel."""


class _MissingVariable(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class _Strict(str):
    """``string_if_invalid`` that raises: Django formats it with the variable's name when it contains %s."""

    __slots__ = ()

    def __contains__(self, item: object) -> bool:
        return item == "%s"

    def __mod__(self, name: object) -> str:
        raise _MissingVariable(str(name))


@functools.cache
def engine() -> Engine:
    templates: list[dict[str, Any]] = settings.TEMPLATES
    dirs = [str(d) for conf in templates for d in conf.get("DIRS", [])]
    return Engine(dirs=dirs, app_dirs=True, string_if_invalid=_Strict("!missing"))


@dataclass(frozen=True)
class Rendered:
    subject: str = ""
    text: str = ""
    html: str = ""
    sms: str = ""
    push_title: str = ""
    push_body: str = ""


class MessageClass:
    """Subclass per message type and decorate with ``@register``.

    Templates live under ``comms/<template_dir>/``: ``subject.txt``, ``body.txt`` and optionally
    ``body.html`` for email, ``sms.txt`` for SMS, ``push_title.txt`` and ``push.txt`` for push.
    """

    key: ClassVar[str]
    label: ClassVar[str] = ""
    template_dir: ClassVar[str]
    channels: ClassVar[tuple[str, ...]] = ("email",)
    # False: only the first usable channel is ever tried (password resets, one-time codes).
    fallback: ClassVar[bool] = True
    mandatory: ClassVar[bool] = False
    # One-time codes and the like: never held for quiet hours (mandatory classes never are either).
    time_critical: ClassVar[bool] = False
    # (opens, closes) in the recipient's time zone; None: the category's window from settings, if any.
    send_window: ClassVar[tuple[time, time] | None] = None
    ttl: ClassVar[timedelta] = timedelta(days=2)
    category: ClassVar[str] = "transactional"
    mailer: ClassVar[str] = "default"
    context_fields: ClassVar[tuple[str, ...]] = ()
    sample_context: ClassVar[dict[str, Any]] = {}

    def __init__(self, **context: Any) -> None:
        name = type(self).__name__
        missing = [f for f in self.context_fields if f not in context]
        if missing:
            raise MessageError(f"{name}: missing context value(s) {', '.join(missing)}")
        unknown = sorted(set(context) - set(self.context_fields))
        if unknown:
            raise MessageError(f"{name}: unknown context value(s) {', '.join(unknown)}")
        self.context = context

    @classmethod
    def sample(cls) -> MessageClass:
        return cls(**cls.sample_context)

    def _render(self, filename: str, *, html: bool, required: bool, extra: dict[str, Any]) -> str:
        name = f"comms/{self.template_dir}/{filename}"
        try:
            template = engine().get_template(name)
            return template.render(Context({**extra, **self.context}, autoescape=html)).strip()
        except TemplateDoesNotExist:
            if required:
                raise MessageError(f"{type(self).__name__}: template {name} does not exist") from None
            return ""
        except _MissingVariable as exc:
            raise MessageError(
                f"{type(self).__name__}: template {name} uses {exc.name!r}, which the context does not provide"
            ) from None
        except TemplateSyntaxError as exc:
            raise MessageError(f"{type(self).__name__}: template {name} has an error: {exc}") from None

    def render(self, *, unsubscribe_url: str = "") -> Rendered:
        """The message's parts; every template may use ``unsubscribe_url`` (empty when there is no link)."""
        extra = {"unsubscribe_url": unsubscribe_url}
        parts: dict[str, str] = {}
        if "email" in self.channels:
            parts["subject"] = " ".join(self._render("subject.txt", html=False, required=True, extra=extra).split())
            parts["text"] = self._render("body.txt", html=False, required=True, extra=extra)
            parts["html"] = self._render("body.html", html=True, required=False, extra=extra)
        if "sms" in self.channels:
            parts["sms"] = self._render("sms.txt", html=False, required=True, extra=extra)
        if "push" in self.channels:
            parts["push_title"] = self._render("push_title.txt", html=False, required=True, extra=extra)
            parts["push_body"] = self._render("push.txt", html=False, required=True, extra=extra)
        return Rendered(**parts)

    @classmethod
    def on_mandatory_failure(cls, message: Message) -> None:
        """Called once, after commit, when a mandatory message of this class ends undelivered."""


CHANNELS = ("email", "sms", "push")
message_classes: dict[str, type[MessageClass]] = {}


def register[C: type[MessageClass]](cls: C) -> C:
    bad = [c for c in cls.channels if c not in CHANNELS]
    if bad or not cls.channels:
        raise MessageError(f"{cls.__name__}: channels must be some of {', '.join(CHANNELS)}, not {cls.channels!r}")
    existing = message_classes.get(cls.key)
    if existing is not None and existing.__qualname__ != cls.__qualname__:
        raise MessageError(f"message type {cls.key!r} is registered twice ({existing.__name__}, {cls.__name__})")
    message_classes[cls.key] = cls
    return cls


def lookup(key: str) -> type[MessageClass] | None:
    return message_classes.get(key)


@dataclass(frozen=True)
class Category:
    """A preference category as the registered classes declare it: the channels its messages may use."""

    name: str
    channels: tuple[str, ...]
    # Every class of the category is mandatory: preferences are kept but never applied.
    mandatory: bool


def categories() -> list[Category]:
    found: dict[str, list[type[MessageClass]]] = {}
    for cls in message_classes.values():
        found.setdefault(cls.category, []).append(cls)
    return [
        Category(
            name=name,
            channels=tuple(c for c in CHANNELS if any(c in cls.channels for cls in classes)),
            mandatory=all(cls.mandatory for cls in classes),
        )
        for name, classes in sorted(found.items())
    ]
