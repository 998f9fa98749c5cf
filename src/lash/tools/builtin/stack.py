"""``standard_tool_stack``: lash's standard tools and plugins in one call.

What lash's standard stack installs, in order: the tool-output budget plugin; exactly one
context approach (``"rolling_history"``, the default, or ``"observational_memory"``; ``None``
installs neither); the shell tools; ``edit``, ``write``, ``read_file`` and ``glob``; and
``search_web``/``fetch_url`` only when a web API key is passed. ``grep`` is a CLI-local tool in
lash and stays out unless ``grep=True``. Runtime-process controls (``list_process_handles``,
``cancel_process``) are not part of this port yet.

The key is taken only from the argument (never silently from the environment), so a stack
offers web tools exactly when its caller asked for them::

    stack = standard_tool_stack(root, context="observational_memory",
                                web_api_key=os.environ.get("LASH_WEB_API_KEY"))
    core = LashCore.builder().tools(stack.tools).plugins(stack.plugins)...build()
    ...
    await stack.aclose()   # kills the processes its shell tools started
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

from lash.clock import Clock
from lash.plugins.budget import ToolOutputBudget
from lash.plugins.history import RollingHistory
from lash.plugins.memory import ObservationalMemory, ObservationalMemoryConfig
from lash.runtime.plugins import Plugin
from lash.tools.base import Tool
from lash.tools.builtin import WorkspaceTools, workspace_tools
from lash.tools.builtin.web import web_tools

__all__ = ["CONTEXT_APPROACHES", "ContextApproach", "StandardToolStack", "standard_tool_stack"]

ContextApproach = Literal["rolling_history", "observational_memory"]
CONTEXT_APPROACHES: tuple[ContextApproach, ...] = ("rolling_history", "observational_memory")

PluginFactory = Callable[[], Plugin]

_STANDARD_ORDER = ("exec_command", "start_command", "write_stdin", "edit", "write", "read_file")


class StandardToolStack:
    """The tools and plugin factories of a standard stack, plus the workspace they share."""

    def __init__(
        self,
        workspace: WorkspaceTools,
        tools: Sequence[Tool],
        plugins: Sequence[tuple[str, PluginFactory]],
        context: ContextApproach | None,
    ) -> None:
        self.workspace = workspace
        self.tools: tuple[Tool, ...] = tuple(tools)
        """Pass to ``LashCoreBuilder.tools``."""
        self.plugins: tuple[PluginFactory, ...] = tuple(f for _, f in plugins)
        """Pass to ``LashCoreBuilder.plugins`` (one instance per session)."""
        self.plugin_ids: tuple[str, ...] = tuple(i for i, _ in plugins)
        """The plugin ids, in installation order."""
        self.context = context
        """The context approach installed (``None``: none)."""

    @property
    def tool_names(self) -> list[str]:
        """The tool names, in installation order."""
        return [t.spec.name for t in self.tools]

    async def aclose(self) -> None:
        """Kill the processes the shell tools started."""
        await self.workspace.aclose()

    async def __aenter__(self) -> StandardToolStack:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _context_plugin(
    context: ContextApproach,
    memory: ObservationalMemoryConfig | None,
    max_context_tokens: int | None,
) -> tuple[str, PluginFactory]:
    if context == "rolling_history":
        if memory is not None:
            raise ValueError("memory configures observational_memory, not rolling_history")
        return RollingHistory.id, functools.partial(RollingHistory, max_context_tokens)
    if context == "observational_memory":
        if max_context_tokens is not None:
            raise ValueError("max_context_tokens configures rolling_history only")
        return ObservationalMemory.id, functools.partial(ObservationalMemory, memory)
    raise ValueError(
        f"unknown context approach {context!r}; expected one of {', '.join(CONTEXT_APPROACHES)}"
    )


def standard_tool_stack(
    root: str | os.PathLike[str],
    *,
    context: ContextApproach | None = "rolling_history",
    web_api_key: str | None = None,
    web_base_url: str | None = None,
    memory: ObservationalMemoryConfig | None = None,
    max_context_tokens: int | None = None,
    grep: bool = False,
    shell: bool = True,
    env: Mapping[str, str] | None = None,
    clock: Clock | None = None,
) -> StandardToolStack:
    """Build lash's standard stack over the workspace ``root``.

    ``memory`` configures observational memory, ``max_context_tokens`` rolling history (each
    is refused with the other approach). ``env`` and ``clock`` go to the shell tools.
    """
    plugins: list[tuple[str, PluginFactory]] = [(ToolOutputBudget.id, ToolOutputBudget)]
    if context is not None:
        plugins.append(_context_plugin(context, memory, max_context_tokens))
    elif memory is not None or max_context_tokens is not None:
        raise ValueError("a context option needs a context approach")
    workspace = workspace_tools(root, shell=shell, env=env, clock=clock)
    by_name = {t.spec.name: t for t in workspace}
    names = [*_STANDARD_ORDER, "glob", *(["grep"] if grep else [])]
    tools: list[Tool] = [by_name[n] for n in names if n in by_name]
    if web_api_key:
        tools.extend(web_tools(web_api_key, base_url=web_base_url, env={}))
    return StandardToolStack(workspace, tools, plugins, context)
