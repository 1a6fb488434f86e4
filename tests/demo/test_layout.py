"""The demo is an ordinary app on top of the reusable ones: none of them reaches into it."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.apps import apps

import console

REUSABLE = ["core", "events", "jobs", "eventsourcing", "comms"]


@pytest.mark.parametrize("label", REUSABLE)
def test_no_reusable_app_imports_or_links_to_the_demo(label: str) -> None:
    root = Path(console.__file__).parent / label
    for source in [*root.rglob("*.py"), *root.rglob("*.html")]:
        text = source.read_text()
        assert "console.demo" not in text and "'demo:" not in text and '"demo:' not in text, source


def test_the_account_read_models_belong_to_the_demo_app() -> None:
    models = {model.__name__: model._meta for model in apps.get_app_config("demo").get_models()}
    assert {"AccountBalance", "AccountActivity"} <= set(models)
    assert models["AccountBalance"].db_table == "demo_accountbalance"
    assert "operate_accounts" in dict(models["AccountBalance"].permissions)
    assert not any("Account" in model.__name__ for model in apps.get_app_config("eventsourcing").get_models())
