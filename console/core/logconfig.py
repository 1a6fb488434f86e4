"""One structlog pipeline for everything that logs.

``configure_logging()`` is the standalone site's (and any site's that wants it): structlog calls and
standard-library records share the processors below and one renderer, so a line looks the same whoever
wrote it and is written exactly once. A site that configures logging its own way keeps it: when structlog
is left unconfigured, ``hand_off_to_stdlib()`` makes the console's structlog lines ordinary standard-library
records with their fields as ``extra``, so the site's own ``LOGGING`` decides where they go. Either way,
declared events are stored by ``emit()`` itself, never by a log processor.
"""

from __future__ import annotations

import logging
import logging.config
from collections.abc import MutableMapping
from typing import Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger


def _drop_color_message(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    # uvicorn/gunicorn duplicate the message in a colour-coded key.
    event_dict.pop("color_message", None)
    return event_dict


def shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _drop_color_message,
    ]


def renderer(debug: bool) -> Processor:
    if debug:
        return structlog.dev.ConsoleRenderer(colors=False)
    return structlog.processors.JSONRenderer()


def configure_logging(*, debug: bool, level: str = "INFO") -> None:
    shared = shared_processors()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            *shared[1:],
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter: MutableMapping[str, Any] = {
        "()": structlog.stdlib.ProcessorFormatter,
        "processors": [
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer(debug),
        ],
        # Records from the standard library (Django, libraries) get the same context and their extra= fields.
        "foreign_pre_chain": [*shared, structlog.stdlib.ExtraAdder()],
    }
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"structured": formatter},
            "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
            "root": {"handlers": ["console"], "level": level},
            "loggers": {
                "django": {"level": level, "propagate": True},
                "django.server": {"level": "WARNING" if level != "DEBUG" else level},
                "django_structlog": {"level": "WARNING"},
                # Huey's consumer adds a plain handler of its own unless "huey" already has one: give it ours.
                "huey": {"level": level, "handlers": ["console"], "propagate": False},
            },
        }
    )


def hand_off_to_stdlib() -> None:
    """Unless the site configured structlog, send structlog's lines to the standard library's logging."""
    if structlog.is_configured():
        return
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            _to_log_kwargs,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


# Attributes of a LogRecord: an event field of the same name would make logging refuse the record.
_RECORD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def _to_log_kwargs(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """structlog's fields as ``extra`` of a standard-library call; a field named like a record attribute
    (``name``, ``module``, ``process``...) gets a trailing underscore instead of crashing the call."""
    kwargs: EventDict = {key: event_dict.pop(key) for key in ("exc_info", "stack_info") if key in event_dict}
    message = event_dict.pop("event", "")
    kwargs["msg"] = message
    kwargs["extra"] = {(f"{key}_" if key in _RECORD_ATTRIBUTES else key): value for key, value in event_dict.items()}
    return kwargs
