"""Coalescing: a process's many wake-ups close in time become one task now and one at the end of a window.

A process committing hundreds of transactions a second would otherwise enqueue a task for each. The first
wake-up after a quiet spell is answered at once; the ones inside the window that follows are answered by one
task deferred to the window's end, which sees everything committed before it runs. While wake-ups keep
coming, each following window is answered by one task at its own end: a busy process enqueues one task per
window, not two, and no wake-up waits longer than a window.
"""

from __future__ import annotations

import threading
import time

NOW = 0.0


class Window:
    """Per-process state of one kind of coalesced task (subscriber catch-up, due deliveries)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until = 0.0
        self._deferred = False

    def reset(self) -> None:
        with self._lock:
            self._until, self._deferred = 0.0, False

    def claim(self, seconds: float, *, now: float | None = None) -> float | None:
        """What this wake-up enqueues: ``NOW`` (0.0), a delay in seconds, or ``None`` when one is already due."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if now < self._until:
                if self._deferred:
                    return None
                self._deferred = True
                return self._until - now
            if self._deferred and now < self._until + seconds:
                # Still busy: the window that just ended has its task starting about now. This window's
                # wake-ups go to one task at its end instead of another at once.
                self._until += seconds
                return self._until - now
            self._until, self._deferred = now + seconds, False
            return NOW
