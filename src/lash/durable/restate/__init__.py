"""lash on Restate: a durable effect host and a turn workflow (extra ``lash-runtime[restate]``).

A turn runs inside a Restate handler. Each model call and tool attempt is a journaled
``ctx.run``; when Restate redrives the handler after a crash, recorded outcomes are replayed
instead of re-executed, and the turn's single commit is idempotent by its turn stamp.
"""

from lash.durable.restate.host import (
    EFFECT_HASH_MISMATCH,
    JournalingContext,
    RecordedEffectError,
    RestateEffectHost,
    effect_step_name,
)

__all__ = [
    "EFFECT_HASH_MISMATCH",
    "JournalingContext",
    "RecordedEffectError",
    "RestateEffectHost",
    "effect_step_name",
]
