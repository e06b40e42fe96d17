from django.db import migrations, models


class Migration(migrations.Migration):
    # A new table only: the previous release never reads it, so this runs before the new code rolls out.
    dependencies = [("console", "0003_operation_approval")]

    operations = [
        migrations.CreateModel(
            name="Lease",
            fields=[
                ("name", models.CharField(max_length=200, primary_key=True, serialize=False)),
                ("holder", models.CharField(max_length=200)),
                ("expires_at", models.DateTimeField()),
                ("acquired_at", models.DateTimeField()),
            ],
            options={"indexes": [models.Index(fields=["holder"], name="console_lease_holder")]},
        ),
    ]
