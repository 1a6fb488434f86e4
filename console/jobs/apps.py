from __future__ import annotations

from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "console.jobs"
    label = "jobs"
    verbose_name = "Jobs"

    def ready(self) -> None:
        from console.core.registry import registry

        registry.add_nav("Jobs", "jobs:catalog", 10)
