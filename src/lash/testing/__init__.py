"""Test support that ships with the package.

``ScriptedProvider`` is a deterministic model; :mod:`lash.testing.scenarios` is the runtime
scenario DSL; :mod:`lash.testing.conformance` is the store conformance kit (imports pytest);
:mod:`lash.testing.wire` replays recorded provider wire scripts;
:mod:`lash.testing.effect_hosts` holds effect-host doubles that record or replay effects.
"""

from lash.testing.effect_hosts import (
    BareEffectHost,
    EffectRecord,
    RecordingEffectHost,
    ReplayJournalHost,
)
from lash.testing.scripted import (
    ScriptedProvider,
    provider_error,
    reply,
    stall,
    tool_call,
)

__all__ = [
    "BareEffectHost",
    "EffectRecord",
    "RecordingEffectHost",
    "ReplayJournalHost",
    "ScriptedProvider",
    "provider_error",
    "reply",
    "stall",
    "tool_call",
]
