"""A Django form for any management command, generated from the command's own argument parser.

The parser is the single source of truth: every action becomes a field, the cleaned form becomes an argv
list, and that argv is parsed by the command's real parser before anything runs, so the form can never
accept what ``python manage.py <command> ...`` would refuse. The form itself is ``forms.CommandForm``.

This module stays one piece beyond 400 lines: each argparse action's field, its initial value and the argv it
turns back into (``Arg``) are read together, and split apart they would drift.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from django import forms
from django.core.management.base import BaseCommand, CommandError

MASK = "••••••"
NEGATIVE_NUMBER = re.compile(r"-\d+|-\d*\.\d+")
# Django's options every command has: folded into the "Advanced" section.
ADVANCED = frozenset({"verbosity", "traceback", "no_color", "force_color", "skip_checks"})
# The run uses the console's own settings and database: never another settings module or import path.
NOT_OFFERED = frozenset({"settings", "pythonpath"})
NO_INPUT_OPTIONS = ("--no-input", "--noinput")
# Flags that, by wide convention, make a command report what it would do instead of doing it.
DRY_RUN_OPTIONS = ("--dry-run", "--dry_run", "--dryrun", "--check", "--noop", "--no-op")
SECRET_WORDS = frozenset({"password", "passwd", "passphrase", "token", "secret", "key", "apikey", "credentials"})

_FLAG_ACTIONS = (
    argparse._StoreTrueAction,
    argparse._StoreFalseAction,
    argparse._StoreConstAction,
    argparse._AppendConstAction,
)


def looks_secret(action: argparse.Action) -> bool:
    words = set(re.split(r"[^a-z0-9]+", action.dest.lower()))
    for option in action.option_strings:
        words |= set(re.split(r"[^a-z0-9]+", option.lower()))
    words |= {word.removesuffix("s") for word in words}  # --keys, --tokens, --api-secrets
    return bool(words & SECRET_WORDS)


def _is_date_type(kind: Any) -> bool:
    if kind in (date.fromisoformat, datetime.fromisoformat):
        return True
    return callable(kind) and "date" in getattr(kind, "__name__", "").lower()


def _type_name(kind: Any) -> str:
    if kind is None:
        return "text"
    if kind is int:
        return "integer"
    if kind is float:
        return "number"
    if _is_date_type(kind):
        return "date"
    if kind is Path or "path" in getattr(kind, "__name__", "").lower():
        return "path"
    return getattr(kind, "__name__", "value")


@dataclass
class Token:
    """One argv element; secret values are shown masked."""

    value: str
    secret: bool = False
    # A user's value standing alone in argv: it must not look like an option, or it would be read as one.
    loose: bool = False

    @property
    def display(self) -> str:
        if not self.secret:
            return self.value
        option, equals, _ = self.value.partition("=")
        return f"{option}={MASK}" if equals and option.startswith("-") else MASK

    @property
    def looks_like_option(self) -> bool:
        return self.loose and self.value.startswith("-") and not NEGATIVE_NUMBER.fullmatch(self.value)


@dataclass
class Arg:
    """One parser action as a form field."""

    action: argparse.Action
    name: str
    kind: str  # flag | bool_optional | count | append | multi | value
    secret: bool
    advanced: bool

    @property
    def option(self) -> str | None:
        """The long option string when there is one; None for a positional."""
        if not self.action.option_strings:
            return None
        longs = [o for o in self.action.option_strings if o.startswith("--")]
        return longs[0] if longs else self.action.option_strings[0]

    @property
    def label(self) -> str:
        if self.option:
            return ", ".join(self.action.option_strings)
        return str(self.action.metavar or self.action.dest)

    @property
    def type_name(self) -> str:
        return _type_name(self.action.type)

    @property
    def default(self) -> Any:
        default = self.action.default
        return None if default is argparse.SUPPRESS else default

    def make_field(self, *, required: bool) -> forms.Field:
        action = self.action
        help_text = _help(action)
        label = self.label
        if self.kind == "flag":
            return forms.BooleanField(required=False, label=label, help_text=help_text, initial=False)
        if self.kind == "bool_optional":
            choices = [("", f"not given (default: {self.default})"), ("yes", action.option_strings[0])]
            choices += [("no", o) for o in action.option_strings[1:2]]
            return forms.ChoiceField(choices=choices, required=False, label=label, help_text=help_text)
        if self.kind == "count":
            return forms.IntegerField(
                min_value=0, max_value=10, initial=0, required=False, label=label, help_text=help_text
            )
        if self.secret and self.kind in ("append", "multi"):
            # A password input holds one line and never shows its value again: values are separated by spaces.
            repeated = " (the option is repeated for each)" if self.kind == "append" else ""
            return forms.CharField(
                required=required,
                label=label,
                help_text=_join(help_text, f"Values separated by spaces{repeated}, quoted as in a shell."),
                strip=False,
                widget=forms.PasswordInput(render_value=False),
                validators=[_words_validator(None if self.kind == "append" else action.nargs)],
            )
        if self.kind == "append":
            return forms.CharField(
                required=required,
                label=label,
                help_text=_join(help_text, "One value per line; the option is repeated for each."),
                widget=forms.Textarea(attrs={"rows": 2}),
            )
        if self.kind == "multi":
            if action.choices is not None:
                return forms.MultipleChoiceField(
                    choices=[(str(c), str(c)) for c in action.choices],
                    required=required,
                    label=label,
                    help_text=help_text,
                    initial=[str(v) for v in self.default] if isinstance(self.default, list | tuple) else None,
                    widget=forms.CheckboxSelectMultiple,
                )
            initial = shlex.join(str(v) for v in self.default) if isinstance(self.default, list | tuple) else None
            return forms.CharField(
                required=required,
                label=label,
                help_text=_join(help_text, f"{_nargs_words(action.nargs)}, separated by spaces (quote as in a shell)."),
                initial=initial,
                validators=[_words_validator(action.nargs)],
            )
        # A single value.
        initial = _initial(self.default)
        if action.choices is not None:
            choices = [(str(c), str(c)) for c in action.choices]
            if not required:
                choices = [("", "—"), *choices]
            return forms.ChoiceField(
                choices=choices, required=required, label=label, help_text=help_text, initial=initial
            )
        if self.secret:
            return forms.CharField(
                required=required, label=label, help_text=help_text, widget=forms.PasswordInput(render_value=False)
            )
        if action.type is int:
            return forms.IntegerField(required=required, label=label, help_text=help_text, initial=initial)
        if action.type is float:
            return forms.FloatField(required=required, label=label, help_text=help_text, initial=initial)
        if _is_date_type(action.type):
            return forms.DateField(
                required=required,
                label=label,
                help_text=help_text,
                initial=initial,
                widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
            )
        attrs = {"placeholder": str(action.metavar)} if isinstance(action.metavar, str) else {}
        return forms.CharField(
            required=required,
            label=label,
            help_text=help_text,
            initial=initial,
            strip=False,
            widget=forms.TextInput(attrs=attrs),
        )

    def tokens(self, value: Any) -> list[Token]:
        """The argv elements for this field's cleaned ``value`` (nothing when it says "use the default")."""
        option, secret = self.option, self.secret
        if self.kind == "flag":
            return [Token(option or "")] if value else []
        if self.kind == "bool_optional":
            if value == "yes":
                return [Token(self.action.option_strings[0])]
            if value == "no":
                return [Token(self.action.option_strings[1])]
            return []
        if self.kind == "count":
            return [Token(option or "")] * int(value or 0)
        if self.kind == "append":
            out: list[Token] = []
            text = str(value or "")
            if secret:
                # From a one-line password input: each value is one repetition, or all of them one when the
                # option takes several.
                words = shlex.split(text)
                lines = [shlex.join(words)] if self.action.nargs not in (None, "?") else words
            else:
                lines = text.splitlines()
            for line in lines:
                if not line.strip():
                    continue
                values = shlex.split(line) if self.action.nargs not in (None, "?") else [line.strip()]
                if len(values) == 1:
                    out.append(Token(f"{option}={values[0]}", secret))
                else:
                    out.append(Token(option or ""))
                    out.extend(Token(v, secret, loose=True) for v in values)
            return out
        if self.kind == "multi":
            values = [str(v) for v in value] if isinstance(value, list) else shlex.split(str(value or ""))
            default = self.default
            if not values or (
                option
                and isinstance(default, list | tuple)
                and values == [str(v) for v in default]
                and not self.action.required
            ):
                return []
            return ([Token(option)] if option else []) + [Token(v, secret, loose=True) for v in values]
        if value is None or value == "":
            return []
        text = value.isoformat() if isinstance(value, date) else str(value)
        if option:
            if (
                not self.action.required
                and _initial(self.default) not in (None, "")
                and text == str(_initial(self.default))
            ):
                return []
            # Attached with "=" (argparse reads "-o=value" too), so a value can never pass for an option.
            return [Token(f"{option}={text}", secret)]
        return [Token(text, secret, loose=True)]


def _help(action: argparse.Action) -> str:
    text = str(action.help or "")
    if text == argparse.SUPPRESS:
        return ""
    if "%(" in text:
        with contextlib.suppress(KeyError, TypeError, ValueError):
            text = text % {**vars(action), "prog": "manage.py", "default": action.default}
    return text


def _join(*parts: str) -> str:
    return " ".join(part for part in parts if part)


def _words_validator(nargs: Any) -> Callable[[str], None]:
    """Check a space-separated value the way argparse will count it, so the message sits next to the field."""

    def validate(value: str) -> None:
        try:
            words = shlex.split(value)
        except ValueError as exc:
            raise forms.ValidationError(f"Unbalanced quotes: {exc}.") from exc
        if isinstance(nargs, int) and len(words) != nargs:
            raise forms.ValidationError(f"Give exactly {nargs} values, not {len(words)}.")

    return validate


def _nargs_words(nargs: Any) -> str:
    if nargs == "+":
        return "One or more values"
    if isinstance(nargs, int):
        return f"Exactly {nargs} values"
    return "Any number of values"


def _initial(default: Any) -> Any:
    if default is None or default is argparse.SUPPRESS or isinstance(default, bool):
        return None
    if isinstance(default, date | int | float | str):
        return default
    return str(default)


def _kind(action: argparse.Action) -> str | None:
    if isinstance(action, argparse._HelpAction | argparse._VersionAction):
        return None
    if isinstance(action, argparse.BooleanOptionalAction):
        return "bool_optional"
    if isinstance(action, argparse._CountAction):
        return "count"
    if isinstance(action, _FLAG_ACTIONS) or action.nargs == 0:
        return "flag"
    if isinstance(action, argparse._AppendAction | argparse._ExtendAction):
        return "append"
    if action.nargs in ("*", "+", argparse.REMAINDER, argparse.PARSER) or isinstance(action.nargs, int):
        return "multi"
    return "value"


@dataclass
class Section:
    """A fieldset of the rendered form: an argument group, an exclusive group, a subcommand, or Advanced."""

    title: str
    description: str = ""
    args: list[Arg] = field(default_factory=list)
    subcommand: str = ""
    exclusive: str = ""  # "", "one" (required) or "at-most-one"


@dataclass
class ParserSpec:
    """A parser turned into fields; ``subparsers`` maps each subcommand to its own spec."""

    parser: argparse.ArgumentParser
    prefix: str
    args: list[Arg] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    exclusive: list[tuple[bool, list[Arg]]] = field(default_factory=list)
    sub_field: str = ""
    sub_action: argparse._SubParsersAction[Any] | None = None
    subparsers: dict[str, ParserSpec] = field(default_factory=dict)
    no_input: str | None = None

    def all_specs(self) -> Iterator[ParserSpec]:
        yield self
        for spec in self.subparsers.values():
            yield from spec.all_specs()


def inspect_parser(parser: argparse.ArgumentParser, prefix: str = "", top: bool = True) -> ParserSpec:
    spec = ParserSpec(parser=parser, prefix=prefix)
    by_action: dict[int, Arg] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            spec.sub_action = action
            spec.sub_field = f"{prefix}subcommand"
            for name, subparser in action.choices.items():
                spec.subparsers[name] = inspect_parser(subparser, f"{prefix}{name}__", top=False)
            continue
        if top and any(o in NO_INPUT_OPTIONS for o in action.option_strings):
            # stdin is closed under the runner: a command that can be told not to ask always is.
            spec.no_input = next(o for o in NO_INPUT_OPTIONS if o in action.option_strings)
            continue
        if top and action.dest in NOT_OFFERED:
            continue
        kind = _kind(action)
        if kind is None:
            continue
        arg = Arg(
            action=action,
            name=f"{prefix}{action.dest}" if action.dest != argparse.SUPPRESS else f"{prefix}{id(action)}",
            kind=kind,
            # A flag holds no value, and a value picked from a fixed list is no secret.
            secret=looks_secret(action) and kind not in ("flag", "count", "bool_optional") and action.choices is None,
            advanced=top and action.dest in ADVANCED,
        )
        spec.args.append(arg)
        by_action[id(action)] = arg

    in_exclusive: set[int] = set()
    for group in parser._mutually_exclusive_groups:
        members = [by_action[id(a)] for a in group._group_actions if id(a) in by_action]
        if not members:
            continue
        spec.exclusive.append((bool(group.required), members))
        in_exclusive.update(id(arg.action) for arg in members)
        container = getattr(group, "_container", None)
        container_title = str(getattr(container, "title", "") or "")
        choose = "choose one of these" if group.required else "choose at most one of these"
        if container_title in ("", "options", "optional arguments", "positional arguments"):
            title = choose.capitalize()
        else:
            title = f"{container_title}: {choose}"
        spec.sections.append(
            Section(
                title=title,
                description=str(getattr(container, "description", "") or "") if container_title else "",
                args=members,
                exclusive="one" if group.required else "at-most-one",
            )
        )
    advanced = [arg for arg in spec.args if arg.advanced and id(arg.action) not in in_exclusive]
    for action_group in parser._action_groups:
        members = [
            by_action[id(a)]
            for a in action_group._group_actions
            if id(a) in by_action and id(a) not in in_exclusive and not by_action[id(a)].advanced
        ]
        if not members:
            continue
        title = {"positional arguments": "Arguments", "options": "Options", "optional arguments": "Options"}.get(
            str(action_group.title), str(action_group.title)
        )
        spec.sections.append(Section(title=title, description=str(action_group.description or ""), args=members))
    spec.sections.sort(key=lambda s: 0 if s.title == "Arguments" else 1)
    for name, sub in spec.subparsers.items():
        for section in sub.sections:
            section.subcommand = name
            section.title = f"{name}: {section.title}"
    if advanced:
        spec.sections.append(Section(title="Advanced", args=advanced))
    return spec


def dry_run_arg(spec: ParserSpec, declared: str | None = None) -> Arg | None:
    """The top-level flag that makes a run a dry run: the option the site declared for the command, or else
    the first conventional one (``--dry-run``, ``--check``, ``--noop`` ...). Only a flag that takes no value
    qualifies: anything else would need a value the console cannot guess."""
    for arg in spec.args:
        if not isinstance(arg.action, argparse._StoreTrueAction):
            continue
        options = set(arg.action.option_strings)
        if (declared in options) if declared else options & set(DRY_RUN_OPTIONS):
            return arg
    return None


def is_required(action: argparse.Action) -> bool:
    if action.option_strings:
        return bool(action.required)
    return action.nargs not in ("?", "*", argparse.REMAINDER)


def validate_argv(command: BaseCommand, name: str, argv: list[str]) -> argparse.Namespace:
    """Parse ``argv`` with the command's own parser; ``CommandError`` with the parser's message if it refuses."""
    parser = command.create_parser("manage.py", name)
    try:
        return parser.parse_args(argv)
    except CommandError:
        raise
    except SystemExit as exc:
        raise CommandError(f"the command's parser refused these arguments (exit {exc.code})") from exc
    except Exception as exc:  # a custom type= or action= that raises something argparse does not catch
        raise CommandError(f"{exc.__class__.__name__}: {exc}") from exc


def display_argv(tokens: list[Token]) -> str:
    return " ".join(t.display if t.secret else shlex.quote(t.value) for t in tokens)


def cli_preview(name: str, tokens: list[Token]) -> str:
    return " ".join(part for part in ("python manage.py", name, display_argv(tokens)) if part)
