"""The "saga-action" operation kind: one operator action over a frozen, ordered list of saga ids."""

from console.actions import Conflict
from console.operations import OperationContext, register
from sagas.actions import apply_action


@register("saga-action", label="Saga action (retry / compensate / resolve / skip)")
def run_saga_action(ctx: OperationContext) -> dict:
    saga_ids = ctx.params["saga_ids"]
    ctx.set_total(len(saga_ids))
    applied = 0
    # Resumable: the list is frozen at start, so after a pause we skip the first ctx.done (ADR 0002).
    for index in range(ctx.done, len(saga_ids)):
        ctx.checkpoint()
        try:
            apply_action(ctx.operation, saga_ids[index], index)
            applied += 1
        except Conflict as e:
            ctx.error(saga_ids[index], str(e))
        ctx.advance()
    return {"applied": applied}
