from __future__ import annotations

from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "console.demo"
    label = "demo"
    verbose_name = "Demo"

    def ready(self) -> None:
        from console.demo import accounts
        from console.eventsourcing import projections

        projections.register(accounts.BalanceProjector())
        projections.register(accounts.ActivityProjector())
