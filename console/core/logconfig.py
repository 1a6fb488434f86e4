"""One structlog pipeline for everything that logs.

structlog calls and standard-library records share the processors below and one renderer, so a line looks
the same whoever wrote it and is written exactly once. Sinks (persisting, counting, publishing declared
events) run inside the structlog chain, before ``wrap_for_formatter``: a formatter runs once per handler and
must never drop or duplicate work.
"""

from __future__ import annotations

import logging
import logging.config
from collections.abc import Callable, MutableMapping
from typing import Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

Sink = Callable[[WrappedLogger, str, EventDict], EventDict]
_sinks: list[Sink] = []


def register_sink(sink: Sink) -> None:
    """Add a processor that sees every structlog event before it is rendered (apps call this in ready())."""
    if sink not in _sinks:
        _sinks.append(sink)


def run_sinks(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    for sink in _sinks:
        event_dict = sink(logger, method_name, event_dict)
    return event_dict


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
            # Sinks see every event whatever the log level: a declared event is persisted and counted even
            # when its line is filtered out of the output.
            run_sinks,
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
