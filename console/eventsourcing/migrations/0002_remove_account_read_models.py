from django.db import migrations


class Migration(migrations.Migration):
    """The account read models no longer belong to this app.

    State only: their tables and rows stay, so that the app that now defines the models can adopt them
    (with a migration that depends on this one) instead of starting from empty tables.
    """

    dependencies = [
        ("eventsourcing", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="AccountActivity"),
                migrations.DeleteModel(name="AccountBalance"),
            ],
        ),
    ]
