"""Every app's settings read one shape, and docs/settings.md documents every key with its real default."""

from __future__ import annotations

import ast
import re
from dataclasses import fields
from pathlib import Path

import pytest

from console.comms.conf import CommsSettings
from console.core.conf import AppSettings, CoreSettings, _convert, _fields
from console.events.conf import EventsSettings
from console.eventsourcing.conf import EventsourcingSettings
from console.jobs.conf import JobsSettings

REFERENCE = (Path(__file__).resolve().parents[2] / "docs" / "settings.md").read_text()
ALL = [CoreSettings, JobsSettings, EventsSettings, EventsourcingSettings, CommsSettings]


def documented(setting: str) -> dict[str, str]:
    """The key -> default cells of the reference's table under ``## <setting>``."""
    section = REFERENCE.split(f"## {setting}\n", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `([A-Z_]+)` \| `(.*?)` \|", section, flags=re.MULTILINE))


@pytest.mark.parametrize("cls", ALL, ids=lambda cls: cls.SETTING)
def test_the_reference_lists_every_key_with_its_default(cls: type[AppSettings]) -> None:
    cells = documented(cls.SETTING)
    assert set(cells) == {f.name.upper() for f in fields(cls)}
    specs = _fields(cls)
    for f in fields(cls):
        default = f.default_factory() if callable(f.default_factory) else f.default
        annotation, metadata = specs[f.name]
        assert _convert(ast.literal_eval(cells[f.name.upper()]), annotation, metadata) == default, f.name


@pytest.mark.parametrize("cls", ALL, ids=lambda cls: cls.SETTING)
def test_the_defaults_pass_their_own_checks(cls: type[AppSettings]) -> None:
    assert cls.check() == []
    assert cls().problems() == []
