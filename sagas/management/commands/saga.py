import uuid

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from console.actions import Conflict
from console.operations import execute
from sagas import actions
from sagas.forms import SagaActionForm
from sagas.models import SagaInstance


class Command(BaseCommand):
    help = "Act on a saga as an operator: retry-step, retry-compensation, compensate, resolve, skip."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=actions.ACTIONS)
        parser.add_argument("saga_id")
        parser.add_argument("--user", required=True, help="the operator acting (audited)")
        parser.add_argument("--reason", required=True)
        parser.add_argument("--key", help="idempotency key (default: a new one)")
        parser.add_argument("--step", help="compensate: the step to compensate from")
        parser.add_argument("--note", help="resolve / skip: what was done or accepted")
        parser.add_argument("--evidence-url", default="")
        parser.add_argument("--preview", action="store_true", help="show what would happen and change nothing")
        parser.add_argument("--wait", action="store_true", help="run the operation here instead of on a worker")

    def handle(self, *args, **o):
        from console.access import OPERATOR, has_role

        user = get_user_model().objects.filter(username=o["user"]).first()
        if user is None or not has_role(user, OPERATOR):
            raise CommandError(f"{o['user']!r} is not an operator")
        saga = SagaInstance.objects.filter(pk=o["saga_id"]).first()
        if saga is None:
            raise CommandError(f"no saga {o['saga_id']!r}")
        form = SagaActionForm(o["action"], {k: o[k] for k in ("step", "note", "evidence_url") if o.get(k)})
        if not form.is_valid():
            raise CommandError(form.message())
        params = form.params()
        try:
            if o["preview"]:
                self.stdout.write(str(actions.preview(saga, o["action"], params)))
                return
            op, _ = actions.do_start_saga_action(
                user, saga, o["action"], params, o["reason"], o["key"] or str(uuid.uuid4()), via="cli"
            )
        except Conflict as e:
            raise CommandError(str(e)) from e
        if o["wait"]:
            execute(op.pk)
            op.refresh_from_db()
        self.stdout.write(f"operation {op.pk} {op.status}")
