"""last_error_type on the instance, filled in from the history, and the indexes that find sagas by what failed."""

from django.db import migrations, models

# The latest failed event of each saga in history order (seq ASC NULLS LAST, occurred_at, id), read backwards. Before
# the indexes, so that the one UPDATE does not maintain them row by row.
BACKFILL = """
UPDATE sagas_sagainstance AS s SET last_error_type = f.error_type
FROM (
    SELECT DISTINCT ON (saga_id) saga_id, error_type FROM sagas_sagastepevent WHERE status = 'failed'
    ORDER BY saga_id, seq DESC NULLS FIRST, occurred_at DESC, id DESC
) AS f
WHERE s.id = f.saga_id AND f.error_type <> ''
"""


class Migration(migrations.Migration):
    dependencies = [
        ("sagas", "0002_derived_tail"),
    ]

    operations = [
        migrations.AddField(
            model_name="sagainstance",
            name="last_error_type",
            field=models.CharField(blank=True, db_default="", default="", max_length=200),
        ),
        migrations.RunSQL(BACKFILL, migrations.RunSQL.noop),
        migrations.AddIndex(
            model_name="sagainstance",
            index=models.Index(
                condition=models.Q(("status__in", ("failed", "compensation_failed"))),
                fields=["status", "current_step", "last_error_type", "saga_type", "-updated_at", "-id"],
                name="saga_failures",
            ),
        ),
        migrations.AddIndex(
            model_name="sagainstance",
            index=models.Index(
                condition=models.Q(("last_error_type", ""), _negated=True),
                fields=["last_error_type", "-updated_at", "-id"],
                name="saga_error",
            ),
        ),
    ]
