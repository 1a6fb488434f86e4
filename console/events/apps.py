from __future__ import annotations

from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "console.events"
    label = "events"
    verbose_name = "Events"

    def ready(self) -> None:
        from console.core.logconfig import register_sink
        from console.core.registry import registry
        from console.events import conf, declarations, pipeline, subscriptions  # noqa: F401  # checks, event types

        register_sink(pipeline.sink)
        pipeline.register_emit_sink(subscriptions.notify_sink)

        registry.add_nav("Events", "events:list", 30)
        registry.add_nav("Webhooks", "events:webhooks", 60)
        registry.add_duty("events.subscriptions", subscriptions.catch_up_all)
