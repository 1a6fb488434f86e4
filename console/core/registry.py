"""What apps contribute to the console shell.

``core`` imports no app: each app registers its nav entry, dashboard panels, banners and periodic duties
here from its ``AppConfig.ready()``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.http import HttpRequest


@dataclass(frozen=True)
class NavEntry:
    label: str
    url_name: str
    order: int


@dataclass(frozen=True)
class Panel:
    """A dashboard panel: a template and a function that builds its context."""

    template: str
    context: Callable[[HttpRequest], dict[str, Any]]
    order: int = 100


@dataclass(frozen=True)
class Duty:
    """A periodic duty the maintenance tick runs; it returns a short summary of what it did."""

    name: str
    run: Callable[[], object]


@dataclass(frozen=True)
class OperationKind:
    """A kind of background operation an app offers (a bulk resend, a replay): how to run it and who may.

    ``run`` is the worker body: it works in batches and calls ``operation.advance(n)`` after each, which
    stops it (raises ``OperationCancelled``) once someone asked to cancel. ``permission`` is needed to see
    and to cancel it; ``on_cancel`` lets the app record its audit event for the cancel.
    """

    kind: str
    run: Callable[[Any], object]
    permission: str
    on_cancel: Callable[[Any, Any], None] | None = None


@dataclass
class Registry:
    nav: list[NavEntry] = field(default_factory=list)
    panels: list[Panel] = field(default_factory=list)
    banners: list[Callable[[HttpRequest], list[str]]] = field(default_factory=list)
    duties: list[Duty] = field(default_factory=list)
    operations: dict[str, OperationKind] = field(default_factory=dict)

    def add_nav(self, label: str, url_name: str, order: int) -> None:
        if all(entry.url_name != url_name for entry in self.nav):
            self.nav.append(NavEntry(label, url_name, order))
            self.nav.sort(key=lambda entry: entry.order)

    def add_panel(self, panel: Panel) -> None:
        if panel not in self.panels:
            self.panels.append(panel)
            self.panels.sort(key=lambda p: p.order)

    def add_banner(self, banner: Callable[[HttpRequest], list[str]]) -> None:
        if banner not in self.banners:
            self.banners.append(banner)

    def add_duty(self, name: str, run: Callable[[], object]) -> None:
        if all(duty.name != name for duty in self.duties):
            self.duties.append(Duty(name, run))

    def add_operation(self, kind: OperationKind) -> None:
        self.operations[kind.kind] = kind


registry = Registry()
