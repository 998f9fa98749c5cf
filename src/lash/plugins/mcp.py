"""MCP servers as tool sources (official ``mcp`` SDK; install ``lash-runtime[mcp]``).

:class:`McpServers` is a per-core connection pool and the plugin factory in one: pass it to
``LashCore.builder().plugins([servers])`` and every session sees the pool's tools. Servers
are attached over stdio (:class:`StdioServer`, a child process spawned once per pool, not
per session) or streamable HTTP (:class:`HttpServer`); SSE is refused.

Tool names are ``mcp__<server>__<tool>`` after :func:`normalize_identifier`, made unique
with ``_2``, ``_3``… in attach order. Definitions are kept while a server is down, so the
catalog does not flap: a call to a server that died gets a tool error, and the next call
reconnects (startup timeout 10 s, call timeout 60 s by default). A server that cannot be
reached never fails :meth:`McpServers.start` or :meth:`McpServers.attach_server`; its
status says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO

from lash.runtime.plugins import Plugin
from lash.tools.base import Tool, ToolContext
from lash.types import ToolCallOutput, ToolSpec

try:
    import httpx2
    from mcp import ClientSession, StdioServerParameters, stdio_client
    from mcp import types as mcp_types
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.exceptions import MCPError
except ImportError as _err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "lash.plugins.mcp needs the MCP SDK: pip install 'lash-runtime[mcp]'"
    ) from _err

__all__ = [
    "HttpServer",
    "McpConfigError",
    "McpPlugin",
    "McpServerStatus",
    "McpServers",
    "McpTool",
    "ServerConfig",
    "SseServer",
    "StdioServer",
    "normalize_identifier",
    "prefixed_tool_name",
]

_CONNECTION_CLOSED = -32000  # JSON-RPC code the SDK uses for a closed connection
_STOP_TIMEOUT_S = 10.0
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class McpConfigError(ValueError):
    """A server configuration that can never work (the only error attaching raises)."""


@dataclass(frozen=True, kw_only=True)
class StdioServer:
    """Spawn ``command args…`` and speak MCP over its stdin/stdout.

    ``env`` is added to a minimal inherited environment; ``stderr`` names a file the
    server's stderr is appended to (``None`` discards it).
    """

    command: str
    args: Sequence[str] = ()
    env: Mapping[str, str] | None = None
    cwd: str | None = None
    stderr: str | None = None
    startup_timeout_s: float = 10.0
    call_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if not self.command.strip():
            raise McpConfigError("stdio MCP server needs a command")
        _check_timeouts(self.startup_timeout_s, self.call_timeout_s)


@dataclass(frozen=True, kw_only=True)
class HttpServer:
    """A streamable-HTTP MCP endpoint (``http(s)://host/path``)."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    startup_timeout_s: float = 10.0
    call_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if not re.match(r"^https?://[^/\s]+", self.url):
            raise McpConfigError(f"MCP server url must be http(s)://…, got {self.url!r}")
        for name, value in self.headers.items():
            if not _HEADER_NAME.match(name):
                raise McpConfigError(f"invalid HTTP header name {name!r}")
            if "\r" in value or "\n" in value:
                raise McpConfigError(f"HTTP header {name!r} has a line break in its value")
        _check_timeouts(self.startup_timeout_s, self.call_timeout_s)


@dataclass(frozen=True, kw_only=True)
class SseServer:
    """The legacy SSE transport: refused at attach (use :class:`HttpServer`)."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)


ServerConfig = StdioServer | HttpServer | SseServer


def _check_timeouts(startup: float, call: float) -> None:
    if startup <= 0 or call <= 0:
        raise McpConfigError("MCP timeouts must be positive")


@dataclass(frozen=True, kw_only=True)
class McpServerStatus:
    """One server's connection state (``failed``: the last connect attempt failed)."""

    name: str
    state: Literal["connected", "disconnected", "failed"]
    tools: int = 0
    error: str | None = None


# --- naming -------------------------------------------------------------------------------


def normalize_identifier(raw: str) -> str:
    """Lowercase ASCII letters/digits with single ``_`` separators; ``tool`` if nothing is left."""
    out: list[str] = []
    pending_sep = False
    for ch in raw:
        if ch.isascii() and ch.isalnum():
            if pending_sep and out:
                out.append("_")
            out.append(ch.lower())
            pending_sep = False
        else:
            pending_sep = True
    return "".join(out) or "tool"


def prefixed_tool_name(server: str, tool: str, used: set[str]) -> str:
    """``mcp__<server>__<tool>``, suffixed ``_2``, ``_3``… until unused (then recorded)."""
    base = f"mcp__{normalize_identifier(server)}__{normalize_identifier(tool)}"
    name, index = base, 1
    while name in used:
        index += 1
        name = f"{base}_{index}"
    used.add(name)
    return name


# --- one server ---------------------------------------------------------------------------


class _Unavailable(Exception):
    pass


class _Connection:
    """One server: a background task owns the transport and client session (the SDK's
    context managers must be entered and left in one task); callers share the session, so
    calls to one server run concurrently."""

    def __init__(
        self, name: str, config: StdioServer | HttpServer, on_change: Callable[[], None]
    ) -> None:
        self.name = name
        self.config = config
        self._on_change = on_change
        self.definitions: list[mcp_types.Tool] = []
        self.error: str | None = None
        self._session: ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return (
            self._session is not None
            and self._task is not None
            and not self._task.done()
            and not _transport_closed(self._session)
        )

    def status(self) -> McpServerStatus:
        if self.connected:
            state: Literal["connected", "disconnected", "failed"] = "connected"
        else:
            state = "failed" if self.error is not None else "disconnected"
        return McpServerStatus(
            name=self.name, state=state, tools=len(self.definitions), error=self.error
        )

    async def connect(self) -> ClientSession:
        """The live session, (re)connecting first if needed; raises :class:`_Unavailable`."""
        async with self._lock:
            if self.connected and self._session is not None:
                return self._session
            await self._close_task()
            loop = asyncio.get_running_loop()
            ready: asyncio.Future[tuple[ClientSession, list[mcp_types.Tool]]] = loop.create_future()
            self._stop = asyncio.Event()
            self._task = asyncio.create_task(self._serve(ready, self._stop))
            try:
                async with asyncio.timeout(self.config.startup_timeout_s):
                    session, tools = await asyncio.shield(ready)
            except TimeoutError:
                await self._close_task(graceful=False)
                _settle(ready)
                self.error = (
                    f"startup timeout: no MCP handshake within {self.config.startup_timeout_s:g}s"
                )
                raise _Unavailable(self.error) from None
            except Exception as err:
                await self._close_task(graceful=False)
                _settle(ready)
                self.error = f"connect failed: {_describe(err)}"
                raise _Unavailable(self.error) from err
            self._session = session
            changed = [t.model_dump() for t in tools] != [t.model_dump() for t in self.definitions]
            self.definitions = tools
            self.error = None
            if changed:
                self._on_change()
            return session

    async def _serve(
        self,
        ready: asyncio.Future[tuple[ClientSession, list[mcp_types.Tool]]],
        stop: asyncio.Event,
    ) -> None:
        errlog: TextIO | None = None
        try:
            async with contextlib.AsyncExitStack() as stack:
                config = self.config
                if isinstance(config, StdioServer):
                    errlog = _open_errlog(config.stderr)
                    params = StdioServerParameters(
                        command=config.command,
                        args=list(config.args),
                        env=dict(config.env) if config.env is not None else None,
                        cwd=config.cwd,
                    )
                    streams = await stack.enter_async_context(stdio_client(params, errlog))
                else:
                    # The SDK's defaults: 30 s to connect/write, a long read for held streams
                    # (our own call timeout bounds each call).
                    timeout = httpx2.Timeout(30.0, read=max(300.0, config.call_timeout_s))
                    client = await stack.enter_async_context(
                        httpx2.AsyncClient(headers=dict(config.headers), timeout=timeout)
                    )
                    streams = await stack.enter_async_context(
                        streamable_http_client(config.url, http_client=client)
                    )
                session = await stack.enter_async_context(ClientSession(*streams))
                await session.initialize()
                tools = await _list_tools(session)
                if not ready.done():
                    ready.set_result((session, tools))
                await stop.wait()
        except Exception as err:
            if not ready.done():
                ready.set_exception(err)
        finally:
            self._session = None
            if not ready.done():
                ready.set_exception(_Unavailable("the MCP connection closed during startup"))
            if errlog is not None:
                errlog.close()

    async def drop(self, reason: str) -> None:
        """Forget a broken connection; the next call reconnects."""
        async with self._lock:
            self.error = reason
            await self._close_task()

    async def _close_task(self, *, graceful: bool = True) -> None:
        """Stop the serving task: ask it to leave its contexts (``graceful``), or cancel it
        outright when it never finished starting (it is not waiting for the stop signal)."""
        task, stop = self._task, self._stop
        self._task = self._stop = None
        self._session = None
        if task is None:
            return
        if stop is not None:
            stop.set()
        if graceful:
            with contextlib.suppress(BaseException):
                async with asyncio.timeout(_STOP_TIMEOUT_S):
                    await asyncio.shield(task)
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    async def call(self, tool: str, arguments: dict[str, Any]) -> ToolCallOutput:
        try:
            session = await self.connect()
        except _Unavailable as err:
            return _failure("mcp_server_unavailable", f"MCP server {self.name!r}: {err}")
        try:
            async with asyncio.timeout(self.config.call_timeout_s):
                result = await session.call_tool(tool, arguments)
        except TimeoutError:
            return _failure(
                "mcp_call_timeout",
                f"MCP tool {tool!r} on {self.name!r} did not answer within "
                f"{self.config.call_timeout_s:g}s",
            )
        except MCPError as err:
            if err.code == _CONNECTION_CLOSED or not self.connected:
                await self.drop(f"connection lost: {err.message}")
                return _failure(
                    "mcp_connection_lost",
                    f"MCP server {self.name!r} went away during the call ({err.message}); "
                    "the next call reconnects",
                )
            return _failure("mcp_call_failed", f"MCP tool {tool!r} failed: {err.message}")
        except Exception as err:  # transport errors: the connection is unusable
            await self.drop(f"connection lost: {_describe(err)}")
            return _failure(
                "mcp_connection_lost",
                f"MCP server {self.name!r} failed during the call ({_describe(err)}); "
                "the next call reconnects",
            )
        if not isinstance(result, mcp_types.CallToolResult):
            return _failure("mcp_call_failed", f"MCP tool {tool!r} returned an unexpected result")
        return _map_result(result)

    async def aclose(self) -> None:
        async with self._lock:
            await self._close_task()


def _settle(ready: asyncio.Future[Any]) -> None:
    """Mark a failed startup future's exception as seen (it was reported another way)."""
    if ready.done() and not ready.cancelled():
        ready.exception()


def _transport_closed(session: ClientSession) -> bool:
    """Whether the SDK has seen the transport end (a server that died while idle), so the
    next call reconnects first instead of failing. The SDK exposes no public flag for this;
    reading its dispatcher's is best-effort and falls back to "open"."""
    dispatcher = getattr(session, "_dispatcher", None)
    return getattr(dispatcher, "_closed", False) is True


async def _list_tools(session: ClientSession) -> list[mcp_types.Tool]:
    tools: list[mcp_types.Tool] = []
    cursor: str | None = None
    while True:
        params = mcp_types.PaginatedRequestParams(cursor=cursor) if cursor else None
        page = await session.list_tools(params=params)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            return tools


def _open_errlog(path: str | None) -> TextIO:
    return open(path or os.devnull, "a", encoding="utf-8")


def _describe(err: BaseException) -> str:
    if isinstance(err, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in err.exceptions)
    text = str(err)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _failure(code: str, message: str, raw: Any = None) -> ToolCallOutput:
    payload: Any = message if raw is None else {"message": message, "raw": raw}
    return ToolCallOutput(status="failure", payload=payload, error_code=code)


def _content_value(block: Any) -> Any:
    kind = getattr(block, "type", None)
    if kind == "text":
        return block.text
    if kind in ("image", "audio"):
        # Binary content is not forwarded inline; the model sees what it was.
        return {"type": kind, "mime_type": getattr(block, "mime_type", None)}
    if hasattr(block, "model_dump"):
        return block.model_dump(mode="json", exclude_none=True)
    return str(block)


def _map_result(result: mcp_types.CallToolResult) -> ToolCallOutput:
    items = [_content_value(b) for b in result.content]
    if result.structured_content is not None:
        value: Any = result.structured_content
    elif len(items) == 1:
        value = items[0]
    else:
        value = items
    if result.is_error:
        text = "\n".join(i for i in items if isinstance(i, str)) or "the MCP tool reported an error"
        return _failure("mcp_tool_error", text, raw=value)
    return ToolCallOutput(status="success", payload=value)


# --- tools, pool and plugin ---------------------------------------------------------------


class McpTool:
    """One imported MCP tool (a :class:`~lash.tools.base.Tool`)."""

    def __init__(self, connection: _Connection, definition: mcp_types.Tool, name: str) -> None:
        self._connection = connection
        self.server = connection.name
        self.remote_name = definition.name
        description = (definition.description or "").strip()
        self._spec = ToolSpec(
            name=name,
            description=f"[MCP {self.server}] {description}"
            if description
            else f"MCP tool from server `{self.server}`",
            parameters=dict(definition.input_schema or {"type": "object", "properties": {}}),
        )

    @property
    def spec(self) -> ToolSpec:
        return self._spec

    @property
    def retry_policy(self) -> Literal["never"]:
        return "never"

    async def invoke(self, ctx: ToolContext, arguments: Mapping[str, Any]) -> ToolCallOutput:
        if not isinstance(arguments, Mapping):
            return _failure("invalid_tool_args", "MCP tool arguments must be a JSON object")
        return await self._connection.call(self.remote_name, dict(arguments))


class McpServers:
    """A pool of MCP servers shared by every session of a core; also the plugin factory."""

    id = "mcp"

    def __init__(self, servers: Mapping[str, ServerConfig] | None = None) -> None:
        self._configs: dict[str, StdioServer | HttpServer] = {}
        self._connections: dict[str, _Connection] = {}
        self._tools: tuple[McpTool, ...] = ()
        for name, config in (servers or {}).items():
            self._register(name, config)

    def _register(self, name: str, config: ServerConfig) -> _Connection:
        if not name.strip():
            raise McpConfigError("MCP server name must not be empty")
        if name in self._connections:
            raise McpConfigError(f"MCP server {name!r} is already attached")
        if isinstance(config, SseServer):
            raise McpConfigError(
                f"MCP server {name!r}: the SSE transport is not supported; "
                "use HttpServer (streamable HTTP)"
            )
        connection = _Connection(name, config, self._rebuild)
        self._connections[name] = connection
        return connection

    async def start(self) -> dict[str, McpServerStatus]:
        """Connect every configured server concurrently; failures only show in the statuses."""
        await asyncio.gather(*(self._try_connect(c) for c in self._connections.values()))
        self._rebuild()
        return self.statuses()

    async def attach_server(self, name: str, config: ServerConfig) -> McpServerStatus:
        """Add a server and connect it; its tools join the catalog from the next turn."""
        connection = self._register(name, config)
        await self._try_connect(connection)
        self._rebuild()
        return connection.status()

    async def detach_server(self, name: str) -> bool:
        """Disconnect and forget a server (its tools leave the catalog)."""
        connection = self._connections.pop(name, None)
        if connection is None:
            return False
        await connection.aclose()
        self._rebuild()
        return True

    async def _try_connect(self, connection: _Connection) -> None:
        with contextlib.suppress(_Unavailable):
            await connection.connect()

    def _rebuild(self) -> None:
        used: set[str] = set()
        tools: list[McpTool] = []
        for connection in self._connections.values():
            for definition in connection.definitions:
                name = prefixed_tool_name(connection.name, definition.name, used)
                tools.append(McpTool(connection, definition, name))
        self._tools = tuple(tools)

    def statuses(self) -> dict[str, McpServerStatus]:
        """Every attached server's status."""
        return {name: c.status() for name, c in self._connections.items()}

    def tools(self) -> Sequence[Tool]:
        """Every imported tool (the ToolProvider contract)."""
        return self._tools

    def __call__(self) -> McpPlugin:
        """A session's view of the pool (the plugin-factory contract)."""
        return McpPlugin(self)

    async def aclose(self) -> None:
        """Disconnect every server (stdio servers are stopped)."""
        await asyncio.gather(*(c.aclose() for c in self._connections.values()))

    async def __aenter__(self) -> McpServers:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class McpPlugin(Plugin):
    """Contributes the pool's tools to one session's catalog."""

    id = "mcp"

    def __init__(self, pool: McpServers) -> None:
        super().__init__()
        self.pool = pool

    def tools(self) -> Sequence[Tool]:
        return self.pool.tools()
