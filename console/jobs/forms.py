"""The jobs app's forms: the form generated from a command's parser, and the run's own fields.

``CommandForm`` turns a command's parser (``introspect.inspect_parser``) into fields and, once valid, into the
argv the real parser accepted; ``RunMetaForm`` is what every run asks besides: why, and for a destructive
command, its name typed to confirm.
"""

from __future__ import annotations

import argparse
import re
from datetime import date
from typing import Any

from django import forms
from django.core.management.base import BaseCommand, CommandError

from console.jobs.catalog import CommandInfo
from console.jobs.conf import jobs_settings
from console.jobs.introspect import (
    NOT_OFFERED,
    Arg,
    ParserSpec,
    Section,
    Token,
    dry_run_arg,
    inspect_parser,
    is_required,
    validate_argv,
)
from console.jobs.models import Missed, Overlap, Schedule
from console.jobs.services import When
from console.jobs.when import MAX_INTERVAL_SECONDS, check_cron, zone


class CommandForm(forms.Form):
    """The generated form; after ``is_valid()``, ``tokens`` holds the argv the real parser accepted, and
    ``options`` what the parser made of it (as the command's ``handle()`` gets it). ``force_dry_run`` sets the
    command's dry-run flag whatever the checkbox says ("Dry run first")."""

    def __init__(self, *args: Any, command: BaseCommand, name: str, force_dry_run: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.command = command
        self.command_name = name
        self.spec = inspect_parser(command.create_parser("manage.py", name))
        self.tokens: list[Token] = []
        self.options: dict[str, Any] = {}
        self._add_fields(self.spec, top=True)
        self.dry_run: Arg | None = dry_run_arg(self.spec, jobs_settings().dry_run.get(name))
        self.force_dry_run = force_dry_run and self.dry_run is not None

    @property
    def dry_run_flag(self) -> str:
        """After ``is_valid()``: the dry-run flag when this run is a dry run, else ""."""
        if self.dry_run is None or not self.options.get(self.dry_run.action.dest):
            return ""
        return self.dry_run.option or ""

    def _add_fields(self, spec: ParserSpec, *, top: bool) -> None:
        if spec.sub_action is not None:
            choices = [(name, name) for name in spec.subparsers]
            required = bool(spec.sub_action.required) or top
            self.fields[spec.sub_field] = forms.ChoiceField(
                choices=choices if required else [("", "—"), *choices],
                required=required and top,
                label="Subcommand",
                help_text="Only the arguments of the chosen subcommand are used.",
            )
        for arg in spec.args:
            self.fields[arg.name] = arg.make_field(required=top and is_required(arg.action))
        for sub in spec.subparsers.values():
            self._add_fields(sub, top=False)

    # --- rendering ---------------------------------------------------------------------------------------
    def sections(self) -> list[tuple[Section, list[forms.BoundField]]]:
        out: list[tuple[Section, list[forms.BoundField]]] = []

        def walk(spec: ParserSpec) -> None:
            for section in spec.sections:
                if section.title == "Advanced":
                    continue
                out.append((section, [self[arg.name] for arg in section.args]))
            for sub in spec.subparsers.values():
                walk(sub)

        walk(self.spec)
        for section in self.spec.sections:
            if section.title == "Advanced":
                out.append((section, [self[arg.name] for arg in section.args]))
        return out

    @property
    def css_subcommands(self) -> list[str]:
        """Subcommand names safe in a CSS selector: the page shows only the chosen one's fields, without JS."""
        return [name for name in self.spec.subparsers if re.fullmatch(r"[A-Za-z0-9_-]+", name)]

    def subcommand_field(self) -> forms.BoundField | None:
        return self[self.spec.sub_field] if self.spec.sub_field else None

    # --- cleaning ----------------------------------------------------------------------------------------
    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        if self.force_dry_run and self.dry_run is not None:
            cleaned[self.dry_run.name] = True
        tokens = self._tokens(self.spec, cleaned, top=True)
        if self.errors:
            return cleaned
        try:
            options = validate_argv(self.command, self.command_name, [t.value for t in tokens])
        except CommandError as exc:
            raise forms.ValidationError(str(exc).removeprefix("Error: "), code="parser") from exc
        if any(getattr(options, name, None) for name in NOT_OFFERED):
            # Belt and braces: a run always uses the console's own settings module and import path.
            raise forms.ValidationError("--settings and --pythonpath cannot be set for a job.", code="not-offered")
        self.tokens = tokens
        self.options = vars(options)
        return cleaned

    def _tokens(self, spec: ParserSpec, cleaned: dict[str, Any], *, top: bool) -> list[Token]:
        positional: list[Token] = []
        optional: list[Token] = []
        greedy: list[Token] = []
        given: dict[int, bool] = {}
        for arg in spec.args:
            value = cleaned.get(arg.name)
            if not top and is_required(arg.action) and value in (None, "", [], False):
                self.add_error(arg.name, "This field is required for this subcommand.")
                continue
            try:
                tokens = arg.tokens(value)
            except ValueError as exc:  # unbalanced quotes in a line of an appended multi-value option
                self.add_error(arg.name, f"Cannot split this into values: {exc}.")
                continue
            if any(token.looks_like_option for token in tokens):
                self.add_error(arg.name, "A value may not start with “-” here: the command would read it as an option.")
                continue
            given[id(arg.action)] = bool(tokens)
            if not arg.option:
                positional.extend(tokens)
            elif arg.action.nargs in ("?", "*", "+", argparse.REMAINDER):
                greedy.extend(tokens)
            else:
                optional.extend(tokens)
        for required, members in spec.exclusive:
            chosen = [arg for arg in members if given.get(id(arg.action))]
            names = ", ".join(arg.label for arg in members)
            # Once, on the group's first member: the page shows its members' errors once, next to the group.
            if len(chosen) > 1:
                self.add_error(members[0].name, f"Give only one of: {names}.")
            elif required and not chosen:
                self.add_error(members[0].name, f"Give one of: {names}.")
        # Positionals go last, together, so argparse matches them (and a subcommand) as one run; an option
        # taking a variable number of values would swallow them, so a fixed-arity option must end its run.
        if greedy and positional and not optional:
            verbosity = next((a for a in spec.args if a.action.dest == "verbosity"), None)
            if verbosity is not None:
                optional = [Token(f"--verbosity={cleaned.get(verbosity.name) or verbosity.default}")]
        out = positional + greedy if greedy and positional and not optional else greedy + optional + positional
        if top and spec.no_input:
            out.insert(0, Token(spec.no_input))
        if spec.sub_action is not None:
            chosen_sub = cleaned.get(spec.sub_field) or ""
            if chosen_sub:
                out.append(Token(chosen_sub))
                out.extend(self._tokens(spec.subparsers[chosen_sub], cleaned, top=False))
        return out

    def initial_data(self) -> dict[str, Any]:
        """The untouched form as a browser would submit it: used to preview the command line before any edit."""
        data: dict[str, Any] = {}
        for name, form_field in self.fields.items():
            initial = self.get_initial_for_field(form_field, name)
            if isinstance(form_field, forms.BooleanField):
                if initial:
                    data[name] = "on"
            elif isinstance(initial, date):
                data[name] = initial.isoformat()
            elif initial not in (None, "", []):
                data[name] = initial
        return data

    def submitted_data(self) -> dict[str, Any]:
        """What the user typed, secrets left out: prefills the form for an edited re-run."""
        secrets = {arg.name for spec in self.spec.all_specs() for arg in spec.args if arg.secret}
        data: dict[str, Any] = {}
        for name in self.fields:
            if name in secrets or self.data is None:
                continue
            getlist = getattr(self.data, "getlist", None)
            values = getlist(name) if getlist else [self.data.get(name)]
            values = [v for v in values if v is not None]
            if values:
                data[name] = (
                    values if len(values) > 1 or isinstance(self.fields[name], forms.MultipleChoiceField) else values[0]
                )
        return data


class RunMetaForm(forms.Form):
    reason = forms.CharField(
        max_length=500, required=False, help_text="Why you are running this: kept with the run and in the audit log."
    )
    confirm = forms.CharField(
        max_length=100,
        required=False,
        label="Type the command name to confirm",
        help_text="This command is destructive.",
    )

    prefix = "job"

    def __init__(self, *args: Any, info: CommandInfo, destructive: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.info = info
        if not destructive:
            del self.fields["confirm"]
        else:
            self.fields["confirm"].required = True

    def clean_confirm(self) -> str:
        value = str(self.cleaned_data.get("confirm", "")).strip()
        if value != self.info.name:
            raise forms.ValidationError(f"Type “{self.info.name}” exactly to run this destructive command.")
        return value


class ScheduleForm(forms.Form):
    """A schedule's name, when it runs and its policies; its command line comes from the ``CommandForm``."""

    name = forms.SlugField(max_length=100, help_text="Letters, digits, “-” and “_”: how the schedule is listed.")
    cron = forms.CharField(
        max_length=200,
        required=False,
        label="Cron expression",
        help_text="Five fields: minute hour day-of-month month day-of-week, such as “30 2 * * *”.",
    )
    interval_seconds = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_INTERVAL_SECONDS,
        label="Or every so many seconds",
        help_text="Instead of a cron expression.",
    )
    time_zone = forms.CharField(
        max_length=64, initial="UTC", help_text="An IANA name such as Europe/Paris: what the cron times mean."
    )
    overlap = forms.ChoiceField(choices=Overlap.choices, initial=Overlap.SKIP, label="When the last run is still going")
    missed = forms.ChoiceField(choices=Missed.choices, initial=Missed.RUN_ONCE, label="Times missed while nothing ran")
    reason = forms.CharField(
        max_length=500, required=False, help_text="Why this runs: kept with the schedule, its runs and the audit log."
    )

    prefix = "schedule"

    def __init__(self, *args: Any, instance: Schedule | None = None, **kwargs: Any) -> None:
        if instance is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "name": instance.name,
                "cron": instance.cron,
                "interval_seconds": instance.interval_seconds,
                "time_zone": instance.time_zone,
                "overlap": instance.overlap,
                "missed": instance.missed,
                "reason": instance.reason,
            }
        super().__init__(*args, **kwargs)
        self.instance = instance

    def clean_name(self) -> str:
        name = str(self.cleaned_data["name"])
        taken = Schedule.objects.filter(name=name)
        if self.instance is not None:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise forms.ValidationError("A schedule of this name exists: choose another name.")
        return name

    def clean_cron(self) -> str:
        expression = " ".join(str(self.cleaned_data.get("cron") or "").split())
        if expression:
            try:
                check_cron(expression)
            except ValueError as exc:
                raise forms.ValidationError(str(exc)) from None
        return expression

    def clean_time_zone(self) -> str:
        name = str(self.cleaned_data.get("time_zone") or "").strip()
        try:
            zone(name)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        return name

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        cron, interval = cleaned.get("cron"), cleaned.get("interval_seconds")
        if "cron" in cleaned and "interval_seconds" in cleaned and bool(cron) == bool(interval):
            self.add_error("cron", "Give either a cron expression or an interval, not both and not neither.")
        return cleaned

    @property
    def when(self) -> When:
        data = self.cleaned_data
        return When(
            cron=data["cron"],
            interval_seconds=data["interval_seconds"],
            time_zone=data["time_zone"],
            overlap=data["overlap"],
            missed=data["missed"],
        )


class DecisionForm(forms.Form):
    """Approving or rejecting a run that awaits approval: why, kept in the audit log."""

    reason = forms.CharField(
        max_length=500, required=False, help_text="Why you approve or reject it: kept in the audit log."
    )

    prefix = "decision"
