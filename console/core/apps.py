from __future__ import annotations

from django.apps import AppConfig

from console.core import converters  # noqa: F401  # registers <text:...> before any URLconf loads


class CoreConfig(AppConfig):
    name = "console.core"
    label = "core"
    verbose_name = "Console core"

    def ready(self) -> None:
        from django.apps import apps

        from console.core import backends, checks, workers  # noqa: F401  # checks registers system checks
        from console.core.operations import fail_lost_operations
        from console.core.registry import registry
        from console.core.tick import forget_stopped_processes

        registry.add_nav("Dashboard", "core:dashboard", 0)
        workers.connect()
        registry.add_duty("core.forget_stopped_processes", forget_stopped_processes)
        registry.add_duty("core.fail_lost_operations", fail_lost_operations)
        if apps.is_installed("huey.contrib.djhuey") and backends.uses_huey():
            # Huey's own periodic schedule runs the tick; other backends run `manage.py console_tick --loop`.
            from console.core import schedule  # noqa: F401
