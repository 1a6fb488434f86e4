"""Drop the output chunks' single-column run index: the (run, seq) unique index covers lookups by run.

Dropped by name rather than by AlterField, which on SQLite would copy the whole output table to remake it.
"""
from __future__ import annotations

import django.db.models.deletion
from django.db import migrations, models

INDEX = "jobs_outputchunk_run_id_abdc5e67"


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0007_dry_run_then_run"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="outputchunk",
                    name="run",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="chunks",
                        to="jobs.jobrun",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{INDEX}"',
                    reverse_sql=f'CREATE INDEX "{INDEX}" ON "jobs_outputchunk" ("run_id")',
                ),
            ],
        ),
    ]
