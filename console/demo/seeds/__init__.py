"""Demo seeders: each module here has ``ORDER`` and ``seed(options) -> str`` and must be idempotent."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SeedOptions:
    events: int
    messages: int
    verbosity: int
