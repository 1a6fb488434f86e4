"""One shape for every app's settings: a frozen dataclass read from one dict in the site's settings.

::

    CONSOLE_JOBS = {"DEFAULT_TIMEOUT": 600, "EXCLUDE": ["sendtestemail"]}

A key is the upper-case name of a dataclass field, and every key has a default, so a site sets only what it
changes. ``load()`` reads the dict once and again whenever Django says the setting changed (tests override
it); a value of the wrong type falls back to the default. ``check()`` is the app's system check, whose errors
name the setting, the key and the fix. The fields' annotations say what a value may be.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Self, cast

from django.conf import settings
from django.core.checks import CheckMessage, Error
from django.core.signals import setting_changed
from django.dispatch import receiver

POSITIVE = {"positive": True}
AT_LEAST_ZERO = {"at_least_zero": True}


class Invalid(ValueError):
    """A setting's value that its field cannot hold; the message says what it must be."""


@dataclass(frozen=True)
class AppSettings:
    """Subclass as a frozen dataclass with ``SETTING`` (the dict's name) and ``CHECK_ID`` (``console.<app>``)."""

    SETTING: ClassVar[str]
    CHECK_ID: ClassVar[str]

    @classmethod
    def load(cls) -> Self:
        loaded = _loaded.get(cls)
        if loaded is None:
            loaded = _loaded[cls] = cls._read()
        return cast(Self, loaded)

    @classmethod
    def _read(cls) -> Self:
        raw = getattr(settings, cls.SETTING, None)
        if not isinstance(raw, dict):
            return cls()
        values: dict[str, Any] = {}
        for name, (annotation, metadata) in _fields(cls).items():
            if name.upper() in raw:
                try:
                    values[name] = _convert(raw[name.upper()], annotation, metadata)
                except Invalid:
                    continue
        return cls(**values)

    @classmethod
    def check(cls, app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
        raw = getattr(settings, cls.SETTING, None)
        if raw is None:
            return []
        if not isinstance(raw, dict):
            return [
                Error(
                    f"{cls.SETTING} must be a dict, not {type(raw).__name__}.",
                    hint=f"Write {cls.SETTING} = {{...}} with the keys you change, or leave it out.",
                    id=f"{cls.CHECK_ID}.E001",
                )
            ]
        known = {name.upper(): spec for name, spec in _fields(cls).items()}
        errors: list[CheckMessage] = [
            Error(
                f"{cls.SETTING} has an unknown key {key!r}.",
                hint=f"Known keys: {', '.join(sorted(known))}.",
                id=f"{cls.CHECK_ID}.E002",
            )
            for key in sorted(set(raw) - set(known), key=str)
        ]
        for key, (annotation, metadata) in known.items():
            if key in raw:
                try:
                    _convert(raw[key], annotation, metadata)
                except Invalid as exc:
                    errors.append(
                        Error(
                            f"{cls.SETTING}[{key!r}] is {raw[key]!r}: {exc}.",
                            hint=f"Fix {cls.SETTING}[{key!r}], or remove it to use the default.",
                            id=f"{cls.CHECK_ID}.E003",
                        )
                    )
        if not errors:
            errors.extend(
                Error(f"{cls.SETTING}: {problem}", id=f"{cls.CHECK_ID}.E004") for problem in cls._read().problems()
            )
        return errors

    def problems(self) -> list[str]:
        """Rules across keys (each value on its own was fine); subclasses override."""
        return []


_loaded: dict[type[AppSettings], AppSettings] = {}


@receiver(setting_changed)
def _forget(*, setting: str, **kwargs: Any) -> None:
    for cls in [cls for cls in _loaded if setting == cls.SETTING]:
        del _loaded[cls]


_specs: dict[type[AppSettings], dict[str, tuple[Any, dict[str, Any]]]] = {}


def _fields(cls: type[AppSettings]) -> dict[str, tuple[Any, dict[str, Any]]]:
    """Each field's resolved annotation and metadata, worked out once per class."""
    spec = _specs.get(cls)
    if spec is None:
        hints = typing.get_type_hints(cls)
        spec = _specs[cls] = {f.name: (hints[f.name], dict(f.metadata)) for f in fields(cls)}
    return spec


def _convert(value: Any, annotation: Any, metadata: dict[str, Any]) -> Any:
    """``value`` as the field's type, or ``Invalid`` saying what it must be."""
    converted = _as_type(value, annotation)
    if isinstance(converted, int | float) and not isinstance(converted, bool):
        if metadata.get("positive") and converted <= 0:
            raise Invalid("it must be more than zero")
        if metadata.get("at_least_zero") and converted < 0:
            raise Invalid("it must be zero or more")
    return converted


def _as_type(value: Any, annotation: Any) -> Any:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (types.UnionType, typing.Union):
        for option in args:
            try:
                return _as_type(value, option)
            except Invalid:
                continue
        raise Invalid(f"it must be one of: {', '.join(_describe(option) for option in args)}")
    if annotation is type(None):
        if value is None:
            return None
        raise Invalid("it must be None")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise Invalid("it must be True or False")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise Invalid("it must be a whole number")
    if annotation is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise Invalid("it must be a number")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise Invalid("it must be a string")
    if origin in (tuple, frozenset):
        if isinstance(value, str | bytes | dict) or not isinstance(value, list | tuple | set | frozenset):
            raise Invalid(f"it must be a list of {_describe(args[0])}s")
        items = [_as_type(item, args[0]) for item in value]
        return tuple(items) if origin is tuple else frozenset(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise Invalid(f"it must be a dict of {_describe(args[0])} to {_describe(args[1])}")
        return {_as_type(key, args[0]): _as_type(item, args[1]) for key, item in value.items()}
    raise TypeError(f"AppSettings cannot read fields of type {annotation!r}")


def _describe(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin in (tuple, frozenset):
        return "list"
    if origin is dict:
        return "dict"
    return {bool: "True/False", int: "whole number", float: "number", str: "string", type(None): "None"}.get(
        annotation, "value"
    )


@dataclass(frozen=True)
class CoreSettings(AppSettings):
    """``CONSOLE_CORE``: what the console shell itself needs."""

    SETTING = "CONSOLE_CORE"
    CHECK_ID = "console.core"

    # The site's manage.py, which job runs and other children start; empty: this process's own manage.py
    # when it was started by one, else ``python -m django`` with this process's settings module.
    manage_py: str = ""
    # A worker that has not picked up a task for this long is reported missing.
    worker_stale_seconds: float = field(default=150.0, metadata=POSITIVE)
    # The maintenance tick (``console_tick --loop``, or Huey's schedule) that has not run for this long is
    # reported stopped.
    tick_stale_seconds: float = field(default=300.0, metadata=POSITIVE)
    # How often a visible page's charts ask for fresh numbers.
    chart_poll_seconds: int = field(default=10, metadata=POSITIVE)


core_settings = CoreSettings.load
