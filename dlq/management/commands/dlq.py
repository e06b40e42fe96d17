"""`python manage.py dlq replay ...`: the API's replay from a shell, as a named user, audited as via="cli".

By default a Celery worker runs the operation, as for the API; `--foreground` runs it here and waits, and running the
same command (same --key) again after this process died resumes it once its heartbeat is stale.
"""

import json

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from console import operations
from console.access import OPERATOR, has_role
from console.actions import Conflict
from console.models import Operation
from dlq import actions
from dlq.forms import replay_params


class Command(BaseCommand):
    help = "Dead-letter actions. Example: dlq replay --user alice --group 3fa1... --rate 50 --reason 'fixed bug'"

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        replay = sub.add_parser("replay")
        replay.add_argument("--user", required=True)
        replay.add_argument("--reason", required=True)
        replay.add_argument("--key", required=True, help="idempotency key")
        replay.add_argument("--ids", help="comma-separated dead-letter ids")
        replay.add_argument("--group", help="a fingerprint")
        replay.add_argument("--filter", help='JSON, e.g. {"origin": "orders"}')
        replay.add_argument(
            "--destination",
            help="kind:connection/destination, or kind:destination on the default connection "
            "(default: each message's origin)",
        )
        replay.add_argument("--rate", type=float)
        replay.add_argument("--canary", type=int, help="send this many first, then judge their re-failures")
        replay.add_argument("--canary-threshold", type=float, help="re-failure fraction that stops the replay")
        replay.add_argument("--canary-wait-seconds", type=float, help="how long to wait for the canary to fail")
        replay.add_argument("--canary-mode", choices=["auto", "manual"])
        replay.add_argument("--batch", type=int)
        replay.add_argument("--dry-run", action="store_true")
        replay.add_argument("--override-loop-guard", action="store_true")
        replay.add_argument(
            "--republish-to-topic",
            action="store_true",
            help="SNS subscriptions' dead letters go to their topic instead of their endpoint: EVERY subscriber "
            "of the topic receives them again",
        )
        replay.add_argument(
            "--foreground",
            action="store_true",
            help="run the replay in this process and wait for it; the same --key again resumes it",
        )

    def handle(self, *args, **o):
        user = get_user_model().objects.filter(username=o["user"]).first()
        if user is None or not has_role(user, OPERATOR):
            raise CommandError(f"{o['user']!r} is not a user with the operator role")
        existing = Operation.objects.filter(idempotency_key=o["key"], kind="dlq.replay", requested_by=user).first()
        if existing is not None:
            # A repeat of the same request: its target set was frozen then, so do not freeze a new one now.
            self.stdout.write(f"operation {existing.pk} already exists: {existing.status}")
            # A repeat of a request that already succeeded is done, not an error (a runner killed after the finish).
            if o["foreground"] and existing.status != Operation.Status.SUCCEEDED:
                self._run(existing)
            return
        body = {
            "dry_run": o["dry_run"],
            "override_loop_guard": o["override_loop_guard"],
            "republish_to_topic": o["republish_to_topic"],
        }
        if o["ids"]:
            body["ids"] = [int(i) for i in o["ids"].split(",")]
        if o["group"]:
            body["group"] = o["group"]
        if o["filter"]:
            body["filter"] = json.loads(o["filter"])
        for name in (
            "destination",
            "rate",
            "canary",
            "canary_threshold",
            "canary_wait_seconds",
            "canary_mode",
            "batch",
        ):
            if o[name] is not None:
                body[name] = o[name]
        try:
            params = replay_params(body)
            frozen = params.pop("_preview")
            op, created = actions.do_replay_dead_letters(user, params, o["reason"], o["key"], via="cli")
        except ValidationError as e:
            raise CommandError(f"invalid request: {e.message_dict}") from e
        except Conflict as e:
            raise CommandError(str(e)) from e
        self.stdout.write(
            f"operation {op.pk} {'started' if created else 'already exists'}: {frozen['count']} dead letters"
        )
        if o["foreground"]:
            self._run(op)

    def _run(self, op) -> None:
        # claim() refuses an operation another process is running (or that finished): a second runner never starts.
        state = operations.execute(op.pk)
        if state is None:
            op.refresh_from_db()
            raise CommandError(f"operation {op.pk} is {op.status} and not ours to run (a worker may have it)")
        op.refresh_from_db()
        self.stdout.write(f"operation {op.pk} {state}: {op.progress_done}/{op.progress_total} {op.message}".rstrip())
        if state != Operation.Status.SUCCEEDED and state != Operation.Status.PAUSED:
            raise CommandError(f"operation {op.pk} {state}")
