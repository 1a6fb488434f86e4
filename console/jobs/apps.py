from __future__ import annotations

from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "console.jobs"
    label = "jobs"
    verbose_name = "Jobs"

    def ready(self) -> None:
        from console.core.backends import uses_huey
        from console.core.charts import ChartSource, register_source
        from console.core.registry import OperationKind, Panel, registry
        from console.jobs import conf, declarations  # noqa: F401  # system checks and event declarations
        from console.jobs.access import RUN
        from console.jobs.bulk import run_bulk
        from console.jobs.maintenance import reap_lost_runs
        from console.jobs.panels import dashboard_charts, dashboard_panel, page_charts
        from console.jobs.retention import prune
        from console.jobs.scheduler import schedule_tick
        from console.jobs.services import BULK, job_bulk_cancelled

        registry.add_nav("Jobs", "jobs:catalog", 10)
        registry.add_duty("jobs.reap_lost_runs", reap_lost_runs)
        registry.add_duty("jobs.schedules", schedule_tick)
        registry.add_duty("jobs.retention", prune)
        registry.add_operation(OperationKind(kind=BULK, run=run_bulk, permission=RUN, on_cancel=job_bulk_cancelled))
        registry.add_panel(Panel(template="jobs/_panel.html", context=dashboard_panel, order=10))
        register_source(ChartSource("jobs", page_charts, dashboard_charts, order=10))
        if uses_huey():
            # A Huey consumer starts its warm runner with itself; other backends' workers at their first run.
            from huey.contrib.djhuey import on_startup

            from console.jobs.warm import prestart

            on_startup()(prestart)
