from __future__ import annotations

from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "console.events"
    label = "events"
    verbose_name = "Events"

    def ready(self) -> None:
        from console.core.logconfig import register_sink
        from console.core.registry import registry
        from console.events import declarations, pipeline  # noqa: F401  # declares the console's event types

        register_sink(pipeline.sink)

        registry.add_nav("Events", "events:list", 30)
        registry.add_nav("Webhooks", "events:webhooks", 60)
