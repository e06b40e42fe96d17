"""What every bench needs first: its own database, and Django set up on it with migrations applied.

Each bench creates and drops a database of its own so it never touches the test databases or the console's.
"""

import os
import uuid

import psycopg

SERVER = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432")


def recreate_database(name: str) -> None:
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(name: str) -> None:
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def setup_django(name: str) -> None:
    os.environ["DATABASE_URL"] = f"{SERVER}/{name}"
    os.environ.setdefault("SWITCHYARD_TESTING", "1")
    os.environ.setdefault("SWITCHYARD_NAMESPACE", f"sybench-{uuid.uuid4().hex[:6]}")
    os.environ["DJANGO_SETTINGS_MODULE"] = "console.settings"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
