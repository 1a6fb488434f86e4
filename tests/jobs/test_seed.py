from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from console.demo.seeds import SeedOptions
from console.demo.seeds import jobs as seed_jobs
from console.events.models import Event
from console.jobs.models import JobRun, Status

OPTIONS = SeedOptions(events=0, messages=0, verbosity=0)


@pytest.mark.django_db
def test_the_seed_creates_finished_runs_once() -> None:
    User.objects.create(username="ops", is_staff=True)
    assert seed_jobs.seed(OPTIONS) == "4 historical runs created"
    assert seed_jobs.seed(OPTIONS) == "4 historical runs already there"
    runs = JobRun.objects.all()
    assert runs.count() == 4 and all(run.is_final for run in runs)
    assert {run.status for run in runs} == {Status.SUCCEEDED, Status.FAILED, Status.CANCELLED}
    assert all(run.chunks.exists() for run in runs)
    # Filed under their classes, so staff who may run them read them.
    assert {run.command: run.job_class for run in runs} == {
        "demo_report": "read-only",
        "demo_fail": "read-only",
        "demo_import": "changes-data",
        "check": "read-only",
    }
    assert Event.objects.filter(type="job.queued").count() == 4
