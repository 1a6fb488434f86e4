"""Forms generated from argparse: every Django and django-extensions command, and every argparse feature."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from django import forms
from django.core.management import get_commands, load_command_class
from django.core.management.base import BaseCommand, CommandParser
from django.template.loader import render_to_string

from console.jobs.forms import CommandForm
from console.jobs.introspect import MASK, cli_preview, display_argv, validate_argv

SAMPLES: dict[type[forms.Field], str] = {
    forms.IntegerField: "1",
    forms.FloatField: "1.5",
    forms.DateField: "2024-01-02",
}

THIRD_PARTY_COMMANDS = sorted(
    (name, app)
    for name, app in get_commands().items()
    if app == "django.core" or app.startswith("django.contrib.") or app == "django_extensions"
)


def data_from_defaults(form: CommandForm, fill_required: bool = True) -> dict[str, Any]:
    """What a browser submits for the untouched form, with a sample value in required fields left blank."""
    data: dict[str, Any] = {}
    chosen_sub = ""
    if form.spec.sub_field:
        chosen_sub = next(iter(form.spec.subparsers))
        data[form.spec.sub_field] = chosen_sub
    sub_required = set()
    if chosen_sub:
        sub = form.spec.subparsers[chosen_sub]
        sub_required = {a.name for a in sub.args if not a.option and a.action.nargs in (None, "+")}
    if getattr(form.spec.parser, "missing_args_message", None):
        # The command refuses an empty command line (sendtestemail, ...): give its first positional a value.
        sub_required |= {next(a.name for a in form.spec.args if not a.option)}
    for name, field in form.fields.items():
        if name in data:
            continue
        initial = form.get_initial_for_field(field, name)
        if isinstance(field, forms.BooleanField):
            if initial:
                data[name] = "on"
            continue
        if initial not in (None, "", []):
            data[name] = initial.isoformat() if isinstance(initial, date) else initial
            continue
        if fill_required and (field.required or name in sub_required):
            if isinstance(field, forms.ChoiceField):
                data[name] = next(value for value, _ in list(field.choices) if value)  # type: ignore[arg-type]
            else:
                data[name] = SAMPLES.get(type(field), "sample")
    return data


@pytest.mark.parametrize(("name", "app"), THIRD_PARTY_COMMANDS, ids=[n for n, _ in THIRD_PARTY_COMMANDS])
def test_every_django_and_extensions_command_renders_and_round_trips(name: str, app: str) -> None:
    command = load_command_class(app, name)
    form = CommandForm(command=command, name=name)
    html = "".join(
        render_to_string("jobs/_field.html", {"field": field}) for _, fields in form.sections() for field in fields
    )
    assert all(f'name="{field_name}"' in html for field_name in form.fields if field_name != form.spec.sub_field)

    bound = CommandForm(data_from_defaults(form), command=command, name=name)
    assert bound.is_valid(), bound.errors.as_text()
    validate_argv(command, name, [t.value for t in bound.tokens])


def test_the_round_trip_covers_both_suites() -> None:
    apps = {app for _, app in THIRD_PARTY_COMMANDS}
    assert "django_extensions" in apps and "django.core" in apps
    assert len(THIRD_PARTY_COMMANDS) > 60


def iso_date(value: str) -> date:
    return date.fromisoformat(value)


def even(value: str) -> int:
    number = int(value)
    if number % 2:
        raise argparse.ArgumentTypeError(f"{value} is not even")
    return number


class Everything(BaseCommand):
    help = "Every argparse feature the form generator supports."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("source", help="Where from.")
        parser.add_argument("maybe", nargs="?", default="fallback")
        parser.add_argument("--pair", nargs=2, metavar=("A", "B"))
        parser.add_argument("--many", nargs="+")
        parser.add_argument("--any", nargs="*", choices=["x", "y", "z"])
        parser.add_argument("--fast", action="store_true")
        parser.add_argument("--no-cache", dest="cache", action="store_false")
        parser.add_argument("--mode-const", action="store_const", const="strict")
        parser.add_argument("--louder", "-L", action="count", default=0)
        parser.add_argument("--tag", action="append")
        parser.add_argument("--kind", choices=["a", "b"], default="a")
        parser.add_argument("--count", type=int, default=3)
        parser.add_argument("--ratio", type=float)
        parser.add_argument("--day", type=iso_date)
        parser.add_argument("--dir", type=Path, metavar="DIR")
        parser.add_argument("--even", type=even)
        parser.add_argument("--progress", action=argparse.BooleanOptionalAction)
        parser.add_argument("--password")
        parser.add_argument("--owner", required=True)
        group = parser.add_argument_group("Output", "Where results go.")
        exclusive = group.add_mutually_exclusive_group(required=True)
        exclusive.add_argument("--stdout", action="store_true")
        exclusive.add_argument("--file")
        parser.add_argument("--no-input", action="store_false", dest="interactive")
        sub = parser.add_subparsers(dest="action", required=True)
        sync = sub.add_parser("sync")
        sync.add_argument("--depth", type=int, default=1)
        sync.add_argument("target")
        sub.add_parser("check")

    def handle(self, *args: Any, **options: Any) -> None:
        raise AssertionError("never run in these tests")


def everything(data: dict[str, Any] | None = None) -> CommandForm:
    return CommandForm(data, command=Everything(), name="everything")


BASE = {"source": "db", "owner": "ops", "stdout": "on", "subcommand": "check"}


def test_fields_follow_the_parser() -> None:
    form = everything()
    fields = form.fields
    assert fields["source"].required and not fields["maybe"].required
    assert form.get_initial_for_field(fields["maybe"], "maybe") == "fallback"
    assert isinstance(fields["fast"], forms.BooleanField) and isinstance(fields["cache"], forms.BooleanField)
    assert isinstance(fields["louder"], forms.IntegerField)
    assert isinstance(fields["tag"].widget, forms.Textarea)
    assert isinstance(fields["kind"], forms.ChoiceField) and fields["kind"].initial == "a"
    assert isinstance(fields["any"], forms.MultipleChoiceField)
    assert isinstance(fields["count"], forms.IntegerField) and fields["count"].initial == 3
    assert isinstance(fields["ratio"], forms.FloatField)
    assert isinstance(fields["day"], forms.DateField)
    assert fields["dir"].widget.attrs["placeholder"] == "DIR"
    assert isinstance(fields["password"].widget, forms.PasswordInput)
    assert fields["owner"].required
    assert "interactive" not in fields  # stdin is closed: --no-input is always passed instead
    assert "settings" not in fields and "pythonpath" not in fields
    assert set(form.fields["subcommand"].choices) == {("sync", "sync"), ("check", "check")}  # type: ignore[attr-defined]
    titles = [section.title for section, _ in form.sections()]
    assert titles[0] == "Arguments"
    assert "Output: choose one of these" in titles and titles[-1] == "Advanced"
    assert "sync: Arguments" in titles and "sync: Options" in titles


def test_the_cleaned_form_becomes_the_argv_the_parser_accepts() -> None:
    form = everything(
        {
            **BASE,
            "maybe": "extra",
            "pair": "left 'right side'",
            "many": "one two",
            "any": ["x", "z"],
            "fast": "on",
            "cache": "on",
            "louder": "2",
            "tag": "red\nblue\n",
            "kind": "b",
            "count": "3",
            "ratio": "0.5",
            "day": "2024-02-29",
            "dir": "/tmp/out",
            "even": "4",
            "progress": "no",
            "password": "hunter2",
            "subcommand": "sync",
            "sync__target": "replica",
            "sync__depth": "2",
        }
    )
    assert form.is_valid(), form.errors
    argv = [t.value for t in form.tokens]
    # Options taking a variable number of values first, then the others (which end their runs), then the
    # positionals together, then the subcommand and its own arguments.
    assert argv == [
        "--no-input",
        *("--many", "one", "two", "--any", "x", "z"),
        *("--pair", "left", "right side", "--fast", "--no-cache", "--louder", "--louder"),
        *("--tag=red", "--tag=blue", "--kind=b", "--ratio=0.5", "--day=2024-02-29", "--dir=/tmp/out"),
        *("--even=4", "--no-progress", "--password=hunter2", "--owner=ops", "--stdout"),
        *("db", "extra", "sync", "--depth=2", "replica"),
    ]
    options = validate_argv(Everything(), "everything", argv)
    assert options.louder == 2 and options.tag == ["red", "blue"] and options.day == date(2024, 2, 29)
    assert options.cache is False and options.progress is False and options.target == "replica"
    assert "hunter2" not in display_argv(form.tokens) and MASK in display_argv(form.tokens)
    assert cli_preview("everything", form.tokens).startswith("python manage.py everything --no-input --many one two")


def test_the_parsers_own_message_is_shown_for_a_value_it_refuses() -> None:
    form = everything({**BASE, "even": "3"})
    assert not form.is_valid()
    assert "argument --even: 3 is not even" in form.non_field_errors()[0]


def test_exclusive_groups_are_validated_next_to_their_fields() -> None:
    both = everything({**BASE, "file": "out.txt"})
    assert not both.is_valid()
    assert both.errors["stdout"] == ["Give only one of: --stdout, --file."] and "file" not in both.errors
    neither = everything({**BASE, "stdout": ""})
    assert not neither.is_valid()
    assert "Give one of: --stdout, --file." in neither.errors["stdout"]


def test_a_subcommand_brings_its_own_required_arguments() -> None:
    form = everything({**BASE, "subcommand": "sync"})
    assert not form.is_valid()
    assert form.errors["sync__target"] == ["This field is required for this subcommand."]
    other = everything({**BASE, "subcommand": "check", "sync__target": "ignored"})
    assert other.is_valid()
    assert "ignored" not in [t.value for t in other.tokens]


def test_typed_fields_reject_bad_values_before_the_parser_sees_them() -> None:
    form = everything({**BASE, "count": "three", "day": "yesterday", "kind": "c"})
    assert not form.is_valid()
    assert set(form.errors) >= {"count", "day", "kind"}


def test_a_secret_value_is_never_rendered_back_and_never_kept_for_reruns() -> None:
    form = everything({**BASE, "password": "hunter2"})
    assert form.is_valid()
    assert "hunter2" not in str(form["password"])
    assert "password" not in form.submitted_data() and form.submitted_data()["source"] == "db"


class Keys(BaseCommand):
    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--token", action="append", help="Repeatable.")
        parser.add_argument("--keys", nargs="+")
        parser.add_argument("--key-pair", nargs=2)
        parser.add_argument("--key-type", choices=["rsa", "ed25519"])
        parser.add_argument("--name", required=True)


def test_repeatable_and_multi_value_secrets_are_password_inputs_that_never_show_their_values() -> None:
    data = {"token": "tok-one 'tok two'", "keys": "key-a key-b", "key_pair": "pair-a pair-b", "key_type": "rsa"}
    invalid = CommandForm(data, command=Keys(), name="keys")  # --name missing: the page is shown again
    assert not invalid.is_valid() and "name" in invalid.errors
    for name in ("token", "keys", "key_pair"):
        html = str(invalid[name])
        assert 'type="password"' in html and 'value="' not in html, html
    page = "".join(str(invalid[name]) for name in invalid.fields)
    assert not any(word in page for word in ("tok-one", "key-a", "pair-a"))
    # A value from a fixed list is no secret.
    assert "<select" in str(invalid["key_type"]) and '<option value="rsa" selected>' in str(invalid["key_type"])

    form = CommandForm({**data, "name": "n"}, command=Keys(), name="keys")
    assert form.is_valid(), form.errors
    assert [(t.value, t.secret) for t in form.tokens] == [
        ("--keys", False),
        ("key-a", True),
        ("key-b", True),
        ("--token=tok-one", True),
        ("--token=tok two", True),
        ("--key-pair", False),
        ("pair-a", True),
        ("pair-b", True),
        ("--key-type=rsa", False),
        ("--name=n", False),
    ]
    assert validate_argv(Keys(), "keys", [t.value for t in form.tokens]).token == ["tok-one", "tok two"]
    assert not {"token", "keys", "key_pair"} & set(form.submitted_data())


def test_a_greedy_option_never_swallows_the_positionals() -> None:
    form = everything({**BASE, "many": "one two"})
    assert form.is_valid(), form.errors
    argv = [t.value for t in form.tokens]
    assert argv[-4:] == ["--owner=ops", "--stdout", "db", "check"]
    assert validate_argv(Everything(), "everything", argv).many == ["one", "two"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("source", "--settings=evil"), ("many", "--pythonpath=/tmp x"), ("pair", "a -b")],
)
def test_a_value_that_would_be_read_as_an_option_is_refused(field: str, value: str) -> None:
    form = everything({**BASE, field: value})
    assert not form.is_valid()
    assert "A value may not start with “-” here" in form.errors[field][0]


def test_values_attached_to_options_and_negative_numbers_are_fine() -> None:
    form = everything({**BASE, "owner": "--settings=evil", "pair": "-1 -2.5", "tag": "-x"})
    assert form.is_valid(), form.errors
    argv = [t.value for t in form.tokens]
    assert "--owner=--settings=evil" in argv and "--tag=-x" in argv and argv[argv.index("--pair") + 1] == "-1"
    assert validate_argv(Everything(), "everything", argv).settings is None
