"""The maintenance tick: every app's periodic duties, run from one entry point."""

from __future__ import annotations

import time

import structlog

from console.core.registry import registry

log = structlog.get_logger(__name__)


def run_tick() -> dict[str, object]:
    """Run each registered duty once; one failing duty is logged and never stops the others."""
    results: dict[str, object] = {}
    for duty in registry.duties:
        started = time.perf_counter()
        try:
            results[duty.name] = duty.run()
        except Exception as exc:
            log.exception("tick.duty_failed", duty=duty.name)
            results[duty.name] = f"failed: {exc.__class__.__name__}: {exc}"
        else:
            log.debug("tick.duty_done", duty=duty.name, seconds=round(time.perf_counter() - started, 3))
    return results
