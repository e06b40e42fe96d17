"""Wake relays on commit: a statement-level trigger NOTIFYs once per inserting statement, and Postgres delivers
notifications only when (and if) the transaction commits, folding duplicates within one transaction."""

from django.db import migrations

FORWARD = """
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('switchyard_outbox', '');
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox_outboxevent
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
"""
BACKWARD = """
DROP TRIGGER IF EXISTS outbox_notify ON outbox_outboxevent;
DROP FUNCTION IF EXISTS outbox_notify();
"""


class Migration(migrations.Migration):
    dependencies = [("outbox", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
