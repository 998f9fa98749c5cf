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
    ReplayDivergence,
    RestateEffectHost,
    effect_step_name,
)
from lash.durable.restate.service import (
    CoreSource,
    ReplayMismatch,
    TurnRunRequest,
    run_durable_turn,
    turn_owner,
    turn_services,
    turn_workflow,
)
from lash.durable.restate.waits import (
    AWAIT_SECRET_REQUIRED,
    CANCEL_PROMISE,
    TERMINAL_PROMISE,
    await_promise_name,
    index_name,
    resolve_wait_promise,
    wait_index,
)

__all__ = [
    "AWAIT_SECRET_REQUIRED",
    "CANCEL_PROMISE",
    "EFFECT_HASH_MISMATCH",
    "TERMINAL_PROMISE",
    "CancelProbe",
    "CoreSource",
    "JournalingContext",
    "RecordedEffectError",
    "ReplayDivergence",
    "ReplayMismatch",
    "RestateEffectHost",
    "TurnRunRequest",
    "await_promise_name",
    "effect_step_name",
    "index_name",
    "resolve_wait_promise",
    "run_durable_turn",
    "turn_owner",
    "turn_services",
    "turn_workflow",
    "wait_index",
]
