from __future__ import annotations

from django.apps import AppConfig


class CommsConfig(AppConfig):
    name = "console.comms"
    label = "comms"
    verbose_name = "Communications"

    def ready(self) -> None:
        from django.utils.module_loading import autodiscover_modules

        from console.comms import conf, declarations, panels, resend, services, signals  # noqa: F401
        from console.comms.maintenance import expire, reconcile, retry_due
        from console.core.charts import ChartSource, register_source
        from console.core.registry import OperationKind, Panel, registry

        registry.add_nav("Messages", "comms:messages", 20)
        registry.add_panel(Panel("comms/_panel.html", panels.dashboard_panel, order=30))
        registry.add_banner(panels.alert_banner)
        register_source(ChartSource("messages", panels.page_charts, panels.dashboard_charts, order=20))
        registry.add_duty("comms.reconcile", reconcile)
        registry.add_duty("comms.retry_due", retry_due)
        registry.add_duty("comms.expire", expire)
        registry.add_operation(
            OperationKind(
                kind=services.RESEND_OPERATION,
                run=resend.run_bulk_resend,
                permission="comms.resend_message",
                on_cancel=services.audit_resend_cancelled,
            )
        )
        # Each installed app may define its message classes in a ``comms_messages`` module, like admin.py.
        autodiscover_modules("comms_messages")
