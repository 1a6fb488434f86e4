from __future__ import annotations

from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "console.events"
    label = "events"
    verbose_name = "Events"

    def ready(self) -> None:
        from console.events import metrics

        # Before anything imports prometheus_client: its multiprocess mode is fixed at import.
        metrics.enable_multiprocess()

        from console.core.charts import ChartSource, register_source
        from console.core.logconfig import hand_off_to_stdlib
        from console.core.registry import OperationKind, Panel, registry
        from console.events import (  # noqa: F401
            conf,
            declarations,
            pipeline,
            retention,
            rollups,
            seal,
            seal_check,
            services,
            subscriptions,
            webhook_replay,
            webhook_sender,
        )
        from console.events.panels import dashboard_charts, disabled_banner, event_log_panel, log_charts, webhook_charts

        hand_off_to_stdlib()
        pipeline.register_emit_sink(metrics.metrics_sink)
        pipeline.register_emit_sink(subscriptions.notify_sink)
        subscriptions.register(webhook_sender.WebhookPublisher())
        subscriptions.register(rollups.RollupSubscriber())
        if conf.events_settings().seal:
            subscriptions.register(seal.Sealer())

        registry.add_nav("Events", "events:list", 30)
        registry.add_nav("Webhooks", "events:webhooks", 60)
        registry.add_panel(Panel("events/_panel.html", event_log_panel, order=30))
        register_source(ChartSource("events", log_charts, dashboard_charts, order=30))
        register_source(ChartSource("webhooks", webhook_charts, order=60))
        registry.add_banner(disabled_banner)
        registry.add_duty("events.subscriptions", subscriptions.catch_up_all)
        registry.add_duty("events.webhooks", webhook_sender.deliver_due)
        registry.add_duty("events.retention", retention.prune)
        registry.add_duty("events.rollups", rollups.prune)
        registry.add_operation(
            OperationKind(
                kind=webhook_replay.KIND,
                run=webhook_replay.run_replay,
                permission="events.change_webhookendpoint",
                on_cancel=services.webhook_replay_cancelled,
            )
        )
        registry.add_operation(
            OperationKind(
                kind=seal_check.KIND,
                run=seal_check.run_check,
                permission="events.verify_log",
                on_cancel=services.log_verify_cancelled,
            )
        )
