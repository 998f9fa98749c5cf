"""The static configuration of one turn machine (one physical turn).

It is a serialisable record because it is part of a :class:`~lash.kernel.MachineSnapshot`: a
restored machine must build byte-identical requests, so everything a request is built from
lives here or in the messages.
"""

from __future__ import annotations

from typing import Any

import msgspec

from lash.types import ModelCapabilities, ToolSpec
from lash.types._base import Record

__all__ = ["MachineConfig"]


class MachineConfig(Record, frozen=True, kw_only=True):
    """What a turn machine needs to know that is not a message."""

    session_id: str
    turn_id: str
    turn_index: int
    model: str
    agent_frame_id: str | None = None
    system_prompt: str | None = None
    tools: tuple[ToolSpec, ...] = ()
    max_turns: int | None = None
    """Protocol-iteration cap for this physical turn (``None``: unlimited)."""
    protocol_iteration_offset: int = 0
    """Where ``protocol_iteration`` starts (non-zero when an agent-frame chain continues)."""
    max_output_tokens: int | None = None
    context_window: int | None = None
    """Prompt budget in tokens; used to tell an output cap from a context overflow."""
    reasoning: str | None = None
    capabilities: ModelCapabilities = msgspec.field(default_factory=ModelCapabilities)
    options: dict[str, Any] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.session_id:
            raise ValueError("MachineConfig.session_id must be non-empty")
        if not self.turn_id:
            raise ValueError("MachineConfig.turn_id must be non-empty")
        if self.turn_index < 0:
            raise ValueError("MachineConfig.turn_index must be >= 0")
        if self.max_turns is not None and self.max_turns < 1:
            raise ValueError("MachineConfig.max_turns must be >= 1 or None")
        if self.protocol_iteration_offset < 0:
            raise ValueError("MachineConfig.protocol_iteration_offset must be >= 0")
        if self.context_window is not None and self.context_window <= 0:
            raise ValueError("MachineConfig.context_window must be positive or None")
        if self.max_output_tokens is not None and self.max_output_tokens <= 0:
            raise ValueError("MachineConfig.max_output_tokens must be positive or None")

    @property
    def iteration_limit(self) -> int | None:
        """The first protocol iteration the turn may not reach (``offset + max_turns``)."""
        if self.max_turns is None:
            return None
        return self.protocol_iteration_offset + self.max_turns
