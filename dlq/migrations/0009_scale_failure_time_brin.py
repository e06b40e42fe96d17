from django.contrib.postgres.indexes import BrinIndex
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations


class Migration(migrations.Migration):
    # Concurrently, outside a transaction: ingest keeps writing while it builds (deploy/k8s/README.md, rolling upgrade).
    atomic = False
    dependencies = [("dlq", "0008_conventions_recognised")]

    operations = [
        AddIndexConcurrently(
            model_name="deadletter",
            index=BrinIndex(fields=["last_failure_at"], name="dlq_failure_brin", autosummarize=True),
        ),
    ]
