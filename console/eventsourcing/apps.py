from __future__ import annotations

from django.apps import AppConfig


class EventsourcingConfig(AppConfig):
    name = "console.eventsourcing"
    label = "eventsourcing"
    verbose_name = "Event sourcing"

    def ready(self) -> None:
        from console.core.registry import Panel, registry
        from console.eventsourcing import conf, declarations, panels, replay  # noqa: F401  # checks

        registry.add_nav("Streams", "eventsourcing:streams", 40)
        registry.add_nav("Projections", "eventsourcing:projections", 50)
        registry.add_panel(Panel("eventsourcing/_panel.html", panels.projections_panel, order=40))
        registry.add_duty("eventsourcing.rebuilds", replay.redispatch_stale)
