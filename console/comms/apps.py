from __future__ import annotations

from django.apps import AppConfig


class CommsConfig(AppConfig):
    name = "console.comms"
    label = "comms"
    verbose_name = "Communications"

    def ready(self) -> None:
        from console.core.registry import registry

        registry.add_nav("Messages", "comms:messages", 20)
