"""The asyncio driver: LashCore, LashSession, turns, leases, effect hosts, observation."""

from lash.runtime.core import LashCore, LashCoreBuilder, SessionOpener
from lash.runtime.effect_host import CancelReceipt, EffectHost, InlineEffectHost, TurnControl
from lash.runtime.lease import LeaseTimings
from lash.runtime.observation import (
    LiveReplayGap,
    LiveReplayStore,
    ObservationEvent,
    SessionCursor,
    SessionObservation,
    SessionReadView,
)
from lash.runtime.plugins import (
    AbortTurn,
    CheckpointContext,
    CompactionContext,
    EmitEvent,
    EnqueueMessages,
    FinalizeContext,
    Plugin,
    PluginSessionContext,
    PrepareContext,
    SwitchAgentFrame,
)
from lash.runtime.scope import ExecutionScope
from lash.runtime.session import LashSession, ParkedSession
from lash.runtime.turn import TurnBuilder, TurnHandle, TurnStream, final_turn

__all__ = [
    "AbortTurn",
    "CancelReceipt",
    "CheckpointContext",
    "CompactionContext",
    "EffectHost",
    "EmitEvent",
    "EnqueueMessages",
    "ExecutionScope",
    "FinalizeContext",
    "InlineEffectHost",
    "LashCore",
    "LashCoreBuilder",
    "LashSession",
    "LeaseTimings",
    "LiveReplayGap",
    "LiveReplayStore",
    "ObservationEvent",
    "ParkedSession",
    "Plugin",
    "PluginSessionContext",
    "PrepareContext",
    "SessionCursor",
    "SessionObservation",
    "SessionOpener",
    "SessionReadView",
    "SwitchAgentFrame",
    "TurnBuilder",
    "TurnControl",
    "TurnHandle",
    "TurnStream",
    "final_turn",
]
