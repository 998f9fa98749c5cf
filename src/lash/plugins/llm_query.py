"""``llm_query``: one direct model completion from inside a turn, as an ordinary tool.

The answer text is the tool's output; the tokens it spent ride on the output as usage
(source ``llm_query``), so the turn reports them in ``children_usage`` and the session
ledger records them with the turn's commit. There is no durability special path: like any
tool attempt, a crash before the turn commits runs the query again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lash.clock import Clock
from lash.plugins._completion import (
    DirectCompletionError,
    direct_completion,
    usage_entry,
    user_message,
)
from lash.providers.base import LlmProvider
from lash.providers.retry import RetryPolicy, Sleep
from lash.runtime.plugins import Plugin
from lash.tools import FunctionTool
from lash.tools.base import Tool, ToolContext
from lash.types import ModelSpec, ToolCallOutput

__all__ = ["LlmQuery", "LlmTools"]

_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "prompt": {"type": "string", "minLength": 1, "description": "The question or task."},
        "system": {"type": "string", "description": "Optional system instructions."},
    },
    "required": ["prompt"],
    "additionalProperties": False,
}


class LlmQuery:
    """A tool provider offering ``llm_query`` against ``provider``/``model``."""

    def __init__(
        self,
        provider: LlmProvider,
        model: ModelSpec | str,
        *,
        source: str = "llm_query",
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        self.provider = provider
        self.model = model if isinstance(model, ModelSpec) else ModelSpec(model)
        self.source = source
        self._retry = retry
        self._clock = clock
        self._sleep = sleep
        self._tool = FunctionTool.from_schema(
            "llm_query",
            "Ask a language model one self-contained question and get its answer as text. "
            "The model sees only what you pass in `prompt`.",
            _SCHEMA,
            self._run,
            threaded=False,
        )

    def tools(self) -> Sequence[Tool]:
        """The ``llm_query`` tool (the ToolProvider contract)."""
        return (self._tool,)

    async def _run(self, ctx: ToolContext, args: dict[str, Any]) -> ToolCallOutput:
        system = args.get("system")
        try:
            response = await direct_completion(
                self.provider,
                self.model,
                [user_message(f"{ctx.call_id}:llm-query", str(args["prompt"]))],
                system=str(system) if system else None,
                retry=self._retry,
                clock=self._clock,
                sleep=self._sleep,
            )
        except DirectCompletionError as err:
            return ToolCallOutput(
                status="failure",
                payload={
                    "message": f"llm_query failed: {err.failure.message}",
                    "provider_failure_kind": err.failure.kind,
                },
                error_code="llm_query_failed",
                retryable=err.failure.retryable,
            )
        return ToolCallOutput(
            status="success",
            payload=response.text,
            usage=usage_entry(self.source, self.model, response),
        )


class LlmTools(Plugin):
    """A plugin contributing ``llm_query`` (use ``functools.partial`` to configure it)."""

    id = "llm_tools"

    def __init__(self, provider: LlmProvider, model: ModelSpec | str, **options: Any) -> None:
        super().__init__()
        self.query = LlmQuery(provider, model, **options)

    def tools(self) -> Sequence[Tool]:
        return self.query.tools()
