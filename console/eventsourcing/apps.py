from __future__ import annotations

from django.apps import AppConfig


class EventsourcingConfig(AppConfig):
    name = "console.eventsourcing"
    label = "eventsourcing"
    verbose_name = "Event sourcing"

    def ready(self) -> None:
        from console.core.registry import registry

        registry.add_nav("Streams", "eventsourcing:streams", 40)
        registry.add_nav("Projections", "eventsourcing:projections", 50)
