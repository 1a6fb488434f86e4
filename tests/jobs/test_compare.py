"""Comparing two runs of one command: arguments side by side, differences marked."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.test import Client

from console.jobs.access import EXPOSE, RUN
from console.jobs.models import ArgumentRow, JobRun, Status, compare_arguments
from tests.conftest import squeezed


def run_of(
    user: User, argv: list[str], command: str = "demo_report", job_class: str = "read-only", **extra: Any
) -> JobRun:
    return JobRun.objects.create(
        command=command,
        argv=argv,
        argv_display=" ".join(argv),
        requested_by=user,
        status=Status.SUCCEEDED,
        job_class=job_class,
        **extra,
    )


def test_arguments_align_where_they_agree_and_mark_what_differs() -> None:
    rows = compare_arguments(["--limit=5", "--tag=a", "Q1", "build"], ["--limit=9", "Q1", "build", "--upload"])
    assert rows == [
        ArgumentRow("--limit=5", "--limit=9", "changed"),
        ArgumentRow("--tag=a", None, "removed"),
        ArgumentRow("Q1", "Q1", "same"),
        ArgumentRow("build", "build", "same"),
        ArgumentRow(None, "--upload", "added"),
    ]
    assert compare_arguments([], []) == []
    assert compare_arguments([""], []) == [ArgumentRow("", None, "removed")]


def table(page: str) -> str:
    return page.split('data-testid="compare"', 1)[1].split("</table>", 1)[0]


def test_a_rerun_links_to_a_comparison_with_its_original(client: Client, operator: User) -> None:
    original = run_of(operator, ["--limit=5", "Q1", "build"])
    rerun = run_of(operator, ["--limit=9", "Q1", "build"], rerun_of=original)
    client.force_login(operator)
    page = client.get(f"/jobs/runs/{rerun.pk}/").content.decode()
    link = f"/jobs/runs/{rerun.pk}/compare?with={original.pk}"
    assert f'href="{link}">compare arguments</a>' in page
    compared = squeezed(client.get(link).content.decode())
    assert f"Runs #{original.pk} and #{rerun.pk} of <code>demo_report</code>" in compared
    assert (
        '<tr class="changed"><td><code>--limit=5</code></td><td><code>--limit=9</code></td><td>changed</td>' in compared
    )
    assert '<tr class="same"><td><code>Q1</code></td><td><code>Q1</code></td><td>same</td>' in compared
    # Either way round, the earlier run is on the left.
    swapped = squeezed(client.get(f"/jobs/runs/{original.pk}/compare?with={rerun.pk}").content.decode())
    assert table(swapped) == table(compared)


def test_without_a_second_run_the_page_offers_the_commands_other_runs(client: Client, operator: User) -> None:
    first = run_of(operator, ["Q1", "build"])
    second = run_of(operator, ["Q2", "build"])
    run_of(operator, [], command="check")
    client.force_login(operator)
    page = client.get(f"/jobs/runs/{second.pk}/compare").content.decode()
    assert f'href="/jobs/runs/{second.pk}/compare?with={first.pk}">Run #{first.pk}</a>' in page
    assert "check" not in page.split("<main", 1)[1].split("Compare its arguments with", 1)[1]


def test_bad_comparisons_say_what_is_wrong(client: Client, operator: User) -> None:
    run = run_of(operator, ["Q1", "build"])
    other = run_of(operator, [], command="check")
    client.force_login(operator)
    for bad in ("x", "-1", "\uff11\uff12", ""):  # the last but one: fullwidth digits
        response = client.get(f"/jobs/runs/{run.pk}/compare", {"with": bad})
        assert response.status_code == 400 and "must be the number of a run" in response.content.decode()
    response = client.get(f"/jobs/runs/{run.pk}/compare?with={other.pk}")
    assert response.status_code == 400
    assert f"Run #{other.pk} is a run of check, not of demo_report: only runs of one command compare." in (
        response.content.decode()
    )
    assert client.get(f"/jobs/runs/{run.pk}/compare?with=999999").status_code == 404


def test_comparing_with_a_run_one_may_not_read_is_refused(client: Client, operator: User, staff_with: Any) -> None:
    readable = run_of(operator, ["Q1", "build"])
    secret = run_of(operator, ["Q2", "build"], job_class="exposes-data")
    client.force_login(staff_with(RUN))
    assert client.get(f"/jobs/runs/{readable.pk}/compare?with={secret.pk}").status_code == 403
    page = client.get(f"/jobs/runs/{readable.pk}/compare").content.decode()
    assert f"?with={secret.pk}" not in page and "No other run of <code>demo_report</code>" in page
    client.force_login(staff_with(RUN, EXPOSE))
    assert client.get(f"/jobs/runs/{readable.pk}/compare?with={secret.pk}").status_code == 200
