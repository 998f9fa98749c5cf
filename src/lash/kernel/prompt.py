"""Request projection: how the turn's messages become one provider-neutral ``LlmRequest``.

Projection is a pure function of the machine config and the messages, so a replayed or
restored machine asks for exactly the same request. Transient messages are never part of the
prompt (they exist for the UI and for plugins only).
"""

from __future__ import annotations

import operator
from collections.abc import Iterable

from lash.kernel.config import MachineConfig
from lash.types import LlmRequest, Message

__all__ = ["build_llm_request", "prompt_messages"]


_TRANSIENT = operator.attrgetter("transient")


def prompt_messages(messages: Iterable[Message]) -> tuple[Message, ...]:
    """The messages a model sees: everything except transient messages, in order."""
    ordered = tuple(messages)
    if not any(map(_TRANSIENT, ordered)):  # the usual case, scanned at C speed
        return ordered
    return tuple(m for m in ordered if not m.transient)


def build_llm_request(
    config: MachineConfig,
    messages: Iterable[Message],
    *,
    request_id: str,
    projected: bool = False,
) -> LlmRequest:
    """Project ``messages`` into a request that offers every configured tool (``auto``).

    ``projected=True`` says the caller already dropped transient messages.
    """
    return LlmRequest(
        model=config.model,
        messages=tuple(messages) if projected else prompt_messages(messages),
        system=config.system_prompt,
        tools=config.tools,
        tool_choice="auto",
        max_output_tokens=config.max_output_tokens,
        reasoning=config.reasoning,
        capabilities=config.capabilities,
        session_id=config.session_id,
        agent_frame_id=config.agent_frame_id,
        request_id=request_id,
        options=dict(config.options),
    )
