"""Built-in workspace tools: files, search and shell, confined to one root directory.

``workspace_tools(root)`` returns a :class:`WorkspaceTools`: a sequence of tools (pass it
where a list of tools is expected) that is also a :class:`~lash.tools.base.ToolProvider`
and owns the running ``start_command`` processes (``await tools.aclose()`` kills them).
Tool names and arguments follow lash: ``read_file``, ``glob``, ``grep``, ``edit``,
``write``, ``exec_command``, ``start_command``, ``write_stdin``.

``web_tools(api_key=None, base_url=None)`` returns ``fetch_url`` and ``search_web`` when a
search API key is configured (argument or ``$LASH_WEB_API_KEY``) and ``[]`` otherwise; see
:mod:`lash.tools.builtin.web` for the search contract and error codes.

``standard_tool_stack(root, context=..., web_api_key=...)`` builds lash's standard stack:
the tool-output budget, one context approach, the workspace tools and (with a key) the web
tools; see :mod:`lash.tools.builtin.stack`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, overload

from lash.clock import Clock
from lash.tools.base import Tool
from lash.tools.builtin._workspace import Workspace
from lash.tools.builtin.edit import make_edit
from lash.tools.builtin.files import make_read_file, make_write
from lash.tools.builtin.search import make_glob, make_grep
from lash.tools.builtin.shell import ProcessTable, ShellConfig, make_shell_tools
from lash.tools.builtin.web import web_tools

if TYPE_CHECKING:
    from lash.tools.builtin.stack import StandardToolStack, standard_tool_stack

__all__ = [
    "StandardToolStack",
    "Workspace",
    "WorkspaceTools",
    "standard_tool_stack",
    "web_tools",
    "workspace_tools",
]

_STACK_NAMES = frozenset({"StandardToolStack", "standard_tool_stack"})


def __getattr__(name: str) -> Any:
    # the stack pulls in the plugins (and through them the runtime): import it on first use
    if name in _STACK_NAMES:
        from lash.tools.builtin import stack

        return getattr(stack, name)
    raise AttributeError(f"module 'lash.tools.builtin' has no attribute {name!r}")


class WorkspaceTools(Sequence[Tool]):
    """The workspace tools plus the process table their shell tools share."""

    def __init__(self, workspace: Workspace, tools: Sequence[Tool], processes: ProcessTable):
        self.workspace = workspace
        self.processes = processes
        self._tools = tuple(tools)

    def tools(self) -> Sequence[Tool]:
        """The tools (the :class:`ToolProvider` contract)."""
        return self._tools

    def get(self, name: str) -> Tool | None:
        """The tool called ``name``."""
        return next((t for t in self._tools if t.spec.name == name), None)

    @overload
    def __getitem__(self, index: int) -> Tool: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Tool]: ...

    def __getitem__(self, index: int | slice) -> Tool | Sequence[Tool]:
        return self._tools[index]

    def __len__(self) -> int:
        return len(self._tools)

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools)

    async def close_session(self, session_id: str) -> None:
        """Kill the processes one session started."""
        await self.processes.close_session(session_id)

    async def aclose(self) -> None:
        """Kill every process started through ``start_command`` (detached ones survive)."""
        await self.processes.aclose()

    async def __aenter__(self) -> WorkspaceTools:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def workspace_tools(
    root: str | os.PathLike[str],
    *,
    shell: bool = True,
    default_shell: str | None = None,
    max_output_bytes: int = 10_000,
    default_timeout_ms: int = 600_000,
    env: Mapping[str, str] | None = None,
    clock: Clock | None = None,
) -> WorkspaceTools:
    """The file, search and (unless ``shell=False``) shell tools, confined to ``root``.

    ``default_shell`` defaults to ``$SHELL`` (else ``/bin/sh``); ``max_output_bytes`` caps
    the command output returned to the model (the full output stays in a file under
    ``<root>/.lash/outputs/``); ``env`` adds variables to every command's environment;
    ``clock`` stamps ``started_at`` on process handles (default: the system clock).
    """
    ws = Workspace(root)
    processes = ProcessTable(clock)
    tools: list[Tool] = [
        make_read_file(ws),
        make_glob(ws),
        make_grep(ws),
        make_edit(ws),
        make_write(ws),
    ]
    if shell:
        config = ShellConfig(
            default_shell=default_shell or os.environ.get("SHELL") or "/bin/sh",
            max_output_bytes=max_output_bytes,
            default_timeout_ms=default_timeout_ms,
            env=dict(env or {}),
        )
        tools.extend(make_shell_tools(ws, config, processes))
    return WorkspaceTools(ws, tools, processes)
