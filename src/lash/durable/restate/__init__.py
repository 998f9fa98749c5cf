"""lash on Restate: a durable effect host and a turn workflow (extra ``lash-runtime[restate]``).

A turn runs inside a Restate handler. Each model call and tool attempt is a journaled
``ctx.run``; when Restate redrives the handler after a crash, recorded outcomes are replayed
instead of re-executed, and the turn's single commit is idempotent by its turn stamp.
"""

from lash.durable.restate.host import (
    EFFECT_HASH_MISMATCH,
    CancelProbe,
    JournalingContext,
    RecordedEffectError,
    RestateEffectHost,
    await_promise_name,
    effect_step_name,
    resolve_wait_promise,
)
from lash.durable.restate.service import (
    CANCEL_PROMISE,
    DONE_PROMISE,
    CoreSource,
    ReplayMismatch,
    TurnRunRequest,
    run_durable_turn,
    turn_owner,
    turn_workflow,
)

__all__ = [
    "CANCEL_PROMISE",
    "DONE_PROMISE",
    "EFFECT_HASH_MISMATCH",
    "CancelProbe",
    "CoreSource",
    "JournalingContext",
    "RecordedEffectError",
    "ReplayMismatch",
    "RestateEffectHost",
    "TurnRunRequest",
    "await_promise_name",
    "effect_step_name",
    "run_durable_turn",
    "turn_owner",
    "resolve_wait_promise",
    "turn_workflow",
]
