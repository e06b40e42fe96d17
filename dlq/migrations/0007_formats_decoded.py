from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("dlq", "0006_dead_letter_parse_error_source_backoff")]

    operations = [
        migrations.AddField(
            model_name="deadletter",
            name="decoded",
            field=models.JSONField(blank=True, null=True),
        ),
    ]
