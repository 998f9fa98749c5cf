"""The wiring a :class:`~lash.runtime.core.LashCore` hands to every session it opens."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from lash.clock import Clock
from lash.providers.base import LlmProvider
from lash.providers.retry import RetryPolicy
from lash.runtime.effect_host import EffectHost
from lash.runtime.lease import LeaseTimings
from lash.runtime.observation import LiveReplayStore
from lash.runtime.plugins import Plugin
from lash.stores.base import AttachmentStore, ProcessEnvStore, SessionStore
from lash.tools.base import Tool
from lash.trace.base import TraceSink
from lash.types import ModelSpec

__all__ = ["CoreConfig", "MAX_AGENT_FRAME_SWITCHES", "TOOL_CANCEL_GRACE_S"]

MAX_AGENT_FRAME_SWITCHES = 16
TOOL_CANCEL_GRACE_S = 0.05

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class CoreConfig:
    """Everything a turn needs besides the session's own state."""

    provider: LlmProvider
    model: ModelSpec
    store: SessionStore | None
    attachments: AttachmentStore
    process_envs: ProcessEnvStore
    effect_host: EffectHost
    tools: Sequence[Tool]
    plugins: Sequence[Callable[[], Plugin]]
    lease_timings: LeaseTimings
    clock: Clock
    live_replay: LiveReplayStore
    retry: RetryPolicy = RetryPolicy()
    max_turns: int | None = 50
    system_prompt: str | None = None
    sleep: Sleep = field(default=asyncio.sleep)
    tool_output_max_bytes: int = 16 * 1024
    tool_output_max_lines: int = 400
    provider_id: str | None = None
    trace: TraceSink | None = None
    batch_tool: bool = False
