"""First-party plugins: tool-output budget, rolling history and compaction, plan mode,
observational memory, ``llm_query``, subagents and MCP servers.

Plugins are registered as factories (one instance per session); a plugin that takes options
is registered with ``functools.partial(Plugin, ...)`` or a lambda. :mod:`lash.plugins.mcp`
needs the ``mcp`` extra and is imported on first use of its names.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lash.plugins.budget import ToolOutputBudget
from lash.plugins.capabilities import Capability, SpawnContext, SpawnRequest, StaticCapability
from lash.plugins.history import Compaction, RollingHistory, model_summariser
from lash.plugins.llm_query import LlmQuery, LlmTools
from lash.plugins.memory import ObservationalMemory, ObservationalMemoryConfig
from lash.plugins.plan_file import (
    FRESH_CONTEXT,
    IMPLEMENT_NOW,
    KEEP_PLANNING,
    PLAN_EXIT_CHOICES,
    PlanExitAnswer,
    PlanExitRequest,
)
from lash.plugins.plan_mode import READ_ONLY_TOOLS, PlanMode
from lash.plugins.subagents import MAX_SUBAGENT_DEPTH, Subagents

if TYPE_CHECKING:
    from lash.plugins.mcp import HttpServer, McpServers, StdioServer

__all__ = [
    "FRESH_CONTEXT",
    "IMPLEMENT_NOW",
    "KEEP_PLANNING",
    "MAX_SUBAGENT_DEPTH",
    "PLAN_EXIT_CHOICES",
    "READ_ONLY_TOOLS",
    "Capability",
    "Compaction",
    "HttpServer",
    "LlmQuery",
    "LlmTools",
    "McpServers",
    "ObservationalMemory",
    "ObservationalMemoryConfig",
    "PlanExitAnswer",
    "PlanExitRequest",
    "PlanMode",
    "RollingHistory",
    "SpawnContext",
    "SpawnRequest",
    "StaticCapability",
    "StdioServer",
    "Subagents",
    "ToolOutputBudget",
    "model_summariser",
]

_MCP_NAMES = frozenset({"HttpServer", "McpServers", "StdioServer"})


def __getattr__(name: str) -> Any:
    if name in _MCP_NAMES:
        return getattr(importlib.import_module("lash.plugins.mcp"), name)
    raise AttributeError(f"module 'lash.plugins' has no attribute {name!r}")
