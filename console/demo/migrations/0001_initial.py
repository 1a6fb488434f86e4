from django.apps.registry import Apps
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

MODELS = ["accountactivity", "accountbalance"]


def _relabel_content_types(apps: Apps, old: str, new: str) -> None:
    # Moving the content types keeps their permissions (operate_accounts among them) and every grant of them
    # to users and groups; new ones would leave the grants on stale permissions.
    content_type = apps.get_model("contenttypes", "ContentType")
    taken = set(content_type.objects.filter(app_label=new, model__in=MODELS).values_list("model", flat=True))
    content_type.objects.filter(app_label=old, model__in=set(MODELS) - taken).update(app_label=new)


def forwards(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    _relabel_content_types(apps, "eventsourcing", "demo")


def backwards(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    _relabel_content_types(apps, "demo", "eventsourcing")


class Migration(migrations.Migration):
    """The account read models, moved here from the eventsourcing app with their rows.

    eventsourcing.0002 dropped them from its state and left the tables; this adopts the tables under their
    old names, then renames them to this app's. A new database gets them the same way, through
    eventsourcing.0001.
    """

    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("eventsourcing", "0002_remove_account_read_models"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="AccountActivity",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("generation", models.PositiveIntegerField(default=0, editable=False)),
                        ("account_id", models.CharField(max_length=100)),
                        ("deposits", models.PositiveIntegerField(default=0)),
                        ("withdrawals", models.PositiveIntegerField(default=0)),
                        ("transfers", models.PositiveIntegerField(default=0)),
                        ("total_in", models.BigIntegerField(default=0)),
                        ("total_out", models.BigIntegerField(default=0)),
                        ("events", models.PositiveIntegerField(default=0)),
                        ("last_position", models.BigIntegerField(default=0)),
                    ],
                    options={
                        "db_table": "eventsourcing_accountactivity",
                        "verbose_name_plural": "account activity",
                        "ordering": ["account_id"],
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("generation", "account_id"), name="es_activity_generation_account"
                            )
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="AccountBalance",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("generation", models.PositiveIntegerField(default=0, editable=False)),
                        ("account_id", models.CharField(max_length=100)),
                        ("owner", models.CharField(max_length=200)),
                        ("balance", models.BigIntegerField(default=0)),
                        ("version", models.PositiveIntegerField(default=0)),
                        ("closed", models.BooleanField(default=False)),
                    ],
                    options={
                        "db_table": "eventsourcing_accountbalance",
                        "ordering": ["account_id"],
                        "permissions": [("operate_accounts", "Can open accounts and move money in the demo domain")],
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("generation", "account_id"), name="es_balance_generation_account"
                            )
                        ],
                    },
                ),
            ],
        ),
        # Real renames, in both directions: eventsourcing_* becomes demo_*.
        migrations.AlterModelTable(name="accountactivity", table=None),
        migrations.AlterModelTable(name="accountbalance", table=None),
        migrations.RunPython(forwards, backwards),
    ]
