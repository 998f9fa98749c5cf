"""Provider wire scripts: replay recorded provider HTTP/SSE bytes through real adapter code.

A script (``lash.provider-wire-script.v1``, the JSON format lash uses) names the endpoint and
request matchers a provider call must satisfy and a timeline of what the "server" does:
start a response, send raw chunks or SSE events, end, disconnect, time out, fail with an
HTTP error or a transport error. Two players run the same scripts:

* :class:`ScriptedTransport`, an ``httpx.AsyncBaseTransport`` handed to the real SDK client
  (no sockets at all; it also serves ``httpx2`` clients, which some SDKs require), and
* :class:`WireServer`, an asyncio HTTP/1.1 server on 127.0.0.1 that a real adapter reaches
  through ``base_url`` (real sockets, real chunked framing, real disconnects).

A request that does not satisfy its script fails with :class:`WireMismatch`, whose message is
a readable diff of what was expected against what was sent.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal

import httpx
import msgspec

try:  # the fork some SDKs (anthropic, openai) are built on; optional for the player
    import httpx2 as _httpx2
except ImportError:  # pragma: no cover - httpx2 ships with the provider SDKs
    _httpx2 = None  # type: ignore[assignment]

from lash.types import (
    LlmResponse,
    ProviderFailure,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
)

__all__ = [
    "SCHEMA",
    "Body",
    "Chunk",
    "Disconnect",
    "End",
    "Endpoint",
    "Header",
    "HeaderMatcher",
    "HttpError",
    "JsonMatcher",
    "Provenance",
    "RequestMatch",
    "ResponseStart",
    "ScriptedTransport",
    "Sse",
    "Timeout",
    "TimelineEvent",
    "TransportError",
    "WireExchange",
    "WireMismatch",
    "WireScript",
    "WireScriptError",
    "WireServer",
    "check_expected",
    "load_script",
    "load_scripts",
    "match_request",
]

SCHEMA = "lash.provider-wire-script.v1"

Sleep = Callable[[float], Awaitable[None]]


class WireScriptError(ValueError):
    """A script file that does not follow the schema."""


class WireMismatch(AssertionError):
    """A request did not satisfy its script; the message is a readable diff."""

    def __init__(self, script: str, problems: Sequence[str], request_summary: str) -> None:
        self.script = script
        self.problems = tuple(problems)
        lines = [f"request does not match wire script {script!r}:"]
        lines += [f"  - {p}" for p in problems]
        lines.append("request sent:")
        lines += [f"    {line}" for line in request_summary.splitlines()]
        super().__init__("\n".join(lines))


class _Strict(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class Endpoint(_Strict, frozen=True, kw_only=True):
    """The method and path a script answers."""

    method: str
    path: str


class JsonMatcher(_Strict, frozen=True, kw_only=True):
    """A predicate on one value of the JSON request body, addressed by a path."""

    present: bool | None = None
    equals: Any | msgspec.UnsetType = msgspec.UNSET
    contains: Any | msgspec.UnsetType = msgspec.UNSET
    contains_role: str | None = None
    min_len: int | None = None


class HeaderMatcher(_Strict, frozen=True, kw_only=True):
    """A predicate on one request header (names are case-insensitive)."""

    present: bool | None = None
    equals: str | None = None
    contains: str | None = None


class RequestMatch(_Strict, frozen=True, kw_only=True):
    """Body and header matchers."""

    body: dict[str, JsonMatcher] = msgspec.field(default_factory=dict)
    headers: dict[str, HeaderMatcher] = msgspec.field(default_factory=dict)


class Header(_Strict, frozen=True, kw_only=True):
    """One response header (repeats are allowed and kept)."""

    name: str
    value: str


class _Event(_Strict, frozen=True, kw_only=True, tag_field="event"):
    at: int = 0


class ResponseStart(_Event, frozen=True, kw_only=True, tag="response_start"):
    """Status line and headers; the body follows as later events."""

    status: int = 200
    headers: tuple[Header, ...] = ()


class Body(_Event, frozen=True, kw_only=True, tag="body"):
    """A whole (buffered) body."""

    data: str


class Chunk(_Event, frozen=True, kw_only=True, tag="chunk"):
    """Raw body bytes: ``data`` as UTF-8 text or ``bytes`` as integers (to split code points)."""

    data: str | None = None
    bytes: tuple[int, ...] | None = None

    def payload(self) -> builtins.bytes:
        """The bytes this chunk sends."""
        if self.bytes is not None:
            return builtins.bytes(self.bytes)
        return (self.data or "").encode("utf-8")


class Sse(_Event, frozen=True, kw_only=True, tag="sse"):
    """One server-sent event, framed as ``data: …\\n\\n``."""

    data: str

    def payload(self) -> bytes:
        """The framed bytes."""
        lines = self.data.split("\n")
        return ("".join(f"data: {line}\n" for line in lines) + "\n").encode("utf-8")


class End(_Event, frozen=True, kw_only=True, tag="end"):
    """The body ends cleanly."""


class Disconnect(_Event, frozen=True, kw_only=True, tag="disconnect"):
    """The connection drops."""

    message: str | None = None
    retryable: bool | None = None


class Timeout(_Event, frozen=True, kw_only=True, tag="timeout"):
    """The server goes silent until the client gives up."""

    message: str | None = None


class HttpError(_Event, frozen=True, kw_only=True, tag="http_error"):
    """A complete non-2xx response."""

    status: int
    headers: tuple[Header, ...] = ()
    body: str = ""


class TransportError(_Event, frozen=True, kw_only=True, tag="transport_error"):
    """A failure below HTTP (refused, reset)."""

    message: str
    retryable: bool | None = None


TimelineEvent = (
    ResponseStart | Body | Chunk | Sse | End | Disconnect | Timeout | HttpError | TransportError
)


class Provenance(_Strict, frozen=True, kw_only=True):
    """Where a recorded-reality script came from."""

    kind: Literal["captured_live", "provider_documentation", "real_world_report"]
    source: str
    captured_at: str | None = None
    notes: str | None = None


class WireScript(_Strict, frozen=True, kw_only=True):
    """One provider exchange: what the request must look like and what the server does."""

    schema: str
    name: str
    provider_kind: str
    endpoint: Endpoint
    request_match: RequestMatch = msgspec.field(default_factory=RequestMatch)
    timeline: tuple[TimelineEvent, ...]
    expected_provider: dict[str, Any] | None = None
    provenance: Provenance | None = None

    def __post_init__(self) -> None:
        if self.schema != SCHEMA:
            raise WireScriptError(f"{self.name}: schema must be {SCHEMA!r}, got {self.schema!r}")
        if not self.timeline:
            raise WireScriptError(f"{self.name}: the timeline is empty")
        last = 0
        started = False
        for index, event in enumerate(self.timeline):
            if event.at < last:
                raise WireScriptError(f"{self.name}: timeline[{index}].at goes backwards")
            last = event.at
            if isinstance(event, Body | Chunk | Sse | End) and not started:
                raise WireScriptError(
                    f"{self.name}: timeline[{index}] sends body bytes before response_start"
                )
            if isinstance(event, ResponseStart):
                started = True

    @classmethod
    def from_json(cls, data: bytes | str) -> WireScript:
        """Parse and validate one script."""
        try:
            return msgspec.json.decode(data, type=cls)
        except msgspec.ValidationError as err:
            raise WireScriptError(f"invalid wire script: {err}") from err

    def with_endpoint(self, *, method: str | None = None, path: str | None = None) -> WireScript:
        """A copy answering another endpoint (to replay a recorded response elsewhere)."""
        endpoint = Endpoint(method=method or self.endpoint.method, path=path or self.endpoint.path)
        return msgspec.structs.replace(self, endpoint=endpoint)

    def with_request_match(self, request_match: RequestMatch) -> WireScript:
        """A copy with other request matchers."""
        return msgspec.structs.replace(self, request_match=request_match)


def load_script(path: str | Path) -> WireScript:
    """Load one script file."""
    try:
        return WireScript.from_json(Path(path).read_bytes())
    except WireScriptError as err:
        raise WireScriptError(f"{path}: {err}") from err


def load_scripts(directory: str | Path) -> list[WireScript]:
    """Load every ``*.json`` script under ``directory``, sorted by path."""
    return [load_script(p) for p in sorted(Path(directory).rglob("*.json"))]


# --- request matching -------------------------------------------------------------------

_MISSING = object()


def _lookup(value: Any, path: str) -> Any:
    """Resolve ``a.b[0].c`` (a key containing dots is tried whole first)."""
    if isinstance(value, dict) and path in value:
        return value[path]
    current = value
    for segment in path.replace("]", "").split("."):
        name, *indexes = segment.split("[")
        if name:
            if not isinstance(current, dict) or name not in current:
                return _MISSING
            current = current[name]
        for raw_index in indexes:
            if not isinstance(current, list):
                return _MISSING
            index = int(raw_index)
            if not -len(current) <= index < len(current):
                return _MISSING
            current = current[index]
    return current


def _show(value: Any) -> str:
    if value is _MISSING:
        return "<missing>"
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 200 else text[:200] + "…"


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str):
        return isinstance(expected, str) and expected in actual
    if isinstance(actual, list):
        return any(item == expected or _contains(item, expected) for item in actual)
    if isinstance(actual, dict):
        if isinstance(expected, dict):
            return all(k in actual and actual[k] == v for k, v in expected.items())
        return expected in actual
    return False


def _check_body(path: str, matcher: JsonMatcher, actual: Any) -> list[str]:
    where = f"body {path}"
    problems: list[str] = []
    exists = actual is not _MISSING
    if matcher.present is not None and matcher.present != exists:
        want = "present" if matcher.present else "absent"
        problems.append(f"{where}: expected {want}, got {_show(actual)}")
    if matcher.equals is not msgspec.UNSET and actual != matcher.equals:
        problems.append(f"{where}: expected {_show(matcher.equals)}, got {_show(actual)}")
    if matcher.contains is not msgspec.UNSET and not _contains(actual, matcher.contains):
        problems.append(
            f"{where}: expected to contain {_show(matcher.contains)}, got {_show(actual)}"
        )
    if matcher.contains_role is not None:
        roles = (
            [m.get("role") for m in actual if isinstance(m, dict)]
            if isinstance(actual, list)
            else []
        )
        if matcher.contains_role not in roles:
            problems.append(
                f"{where}: expected an item with role {matcher.contains_role!r}, got roles {roles}"
            )
    if matcher.min_len is not None:
        size = len(actual) if isinstance(actual, list | str | dict) else None
        if size is None or size < matcher.min_len:
            problems.append(f"{where}: expected length >= {matcher.min_len}, got {size}")
    return problems


def _check_header(name: str, matcher: HeaderMatcher, values: list[str]) -> list[str]:
    where = f"header {name}"
    problems: list[str] = []
    if matcher.present is not None and matcher.present != bool(values):
        problems.append(f"{where}: expected {'present' if matcher.present else 'absent'}")
    joined = ", ".join(values)
    if matcher.equals is not None and matcher.equals not in values:
        problems.append(f"{where}: expected {matcher.equals!r}, got {joined or '<missing>'!r}")
    if matcher.contains is not None and matcher.contains not in joined:
        problems.append(
            f"{where}: expected to contain {matcher.contains!r}, got {joined or '<missing>'!r}"
        )
    return problems


def match_request(
    script: WireScript,
    *,
    method: str,
    path: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
) -> list[str]:
    """Every way the request fails the script (empty when it matches)."""
    problems: list[str] = []
    if method.upper() != script.endpoint.method.upper():
        problems.append(f"method: expected {script.endpoint.method}, got {method}")
    want_path = script.endpoint.path
    got_path = path if "?" in want_path else path.split("?", 1)[0]
    if got_path != want_path:
        problems.append(f"path: expected {want_path}, got {got_path}")
    parsed: Any = _MISSING
    if script.request_match.body:
        try:
            parsed = json.loads(body) if body else _MISSING
        except ValueError:
            problems.append(f"body: expected JSON, got {body[:200]!r}")
    for body_path, matcher in script.request_match.body.items():
        actual = _lookup(parsed, body_path) if parsed is not _MISSING else _MISSING
        problems += _check_body(body_path, matcher, actual)
    header_map: dict[str, list[str]] = {}
    for name, value in headers:
        header_map.setdefault(name.lower(), []).append(value)
    for name, header_matcher in script.request_match.headers.items():
        problems += _check_header(name, header_matcher, header_map.get(name.lower(), []))
    return problems


_REDACTED = frozenset({"authorization", "x-api-key", "x-goog-api-key", "cookie"})


def _summary(method: str, path: str, headers: Iterable[tuple[str, str]], body: bytes) -> str:
    lines = [f"{method} {path}"]
    for name, value in headers:
        shown = "<redacted>" if name.lower() in _REDACTED else value
        lines.append(f"{name}: {shown}")
    try:
        pretty = json.dumps(json.loads(body), indent=2, sort_keys=True, ensure_ascii=False)
    except ValueError:
        pretty = body[:2000].decode("utf-8", errors="replace")
    lines.append("")
    lines.extend(pretty.splitlines()[:200])
    return "\n".join(lines)


@dataclass(frozen=True)
class WireExchange:
    """One request a player received and the script that answered it."""

    script: str
    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def json(self) -> Any:
        """The request body as JSON."""
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        """The first value of a request header."""
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


@dataclass
class _Queue:
    scripts: list[WireScript]
    exchanges: list[WireExchange] = field(default_factory=list)
    mismatches: list[WireMismatch] = field(default_factory=list)

    def take(
        self, method: str, path: str, headers: Sequence[tuple[str, str]], body: bytes
    ) -> WireScript:
        if not self.scripts:
            error = WireMismatch(
                "<none>",
                ["no wire script left for this request"],
                _summary(method, path, headers, body),
            )
            self.mismatches.append(error)
            raise error
        script = self.scripts.pop(0)
        self.exchanges.append(
            WireExchange(
                script=script.name, method=method, path=path, headers=tuple(headers), body=body
            )
        )
        problems = match_request(script, method=method, path=path, headers=headers, body=body)
        if problems:
            error = WireMismatch(script.name, problems, _summary(method, path, headers, body))
            self.mismatches.append(error)
            raise error
        return script


class _Pacer:
    """Plays the virtual ``at`` schedule through an injected sleep (or not at all)."""

    def __init__(self, sleep: Sleep | None) -> None:
        self._sleep = sleep
        self._last = 0

    async def reach(self, at: int) -> None:
        if self._sleep is not None and at > self._last:
            await self._sleep((at - self._last) / 1000.0)
        self._last = max(self._last, at)


def _flavour(request: Any) -> Any:
    """The httpx module (``httpx`` or ``httpx2``) a request belongs to."""
    if _httpx2 is not None and isinstance(request, _httpx2.Request):
        return _httpx2
    return httpx


_StreamBases: tuple[type, ...] = (httpx.AsyncByteStream,)
_TransportBases: tuple[type, ...] = (httpx.AsyncBaseTransport,)
if _httpx2 is not None:
    _StreamBases += (_httpx2.AsyncByteStream,)
    _TransportBases += (_httpx2.AsyncBaseTransport,)


class _ScriptedBody(*_StreamBases):  # type: ignore[misc]
    def __init__(self, events: Sequence[TimelineEvent], request: Any, pacer: _Pacer) -> None:
        self._events = events
        self._request = request
        self._pacer = pacer
        self._mod = _flavour(request)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        mod = self._mod
        for event in self._events:
            await self._pacer.reach(event.at)
            if isinstance(event, Chunk | Sse):
                yield event.payload()
            elif isinstance(event, Body):
                yield event.data.encode("utf-8")
            elif isinstance(event, End):
                return
            elif isinstance(event, Disconnect):
                raise mod.RemoteProtocolError(
                    event.message or "peer closed connection mid-body", request=self._request
                )
            elif isinstance(event, Timeout):
                raise mod.ReadTimeout(
                    event.message or "timed out waiting for the next chunk", request=self._request
                )
            elif isinstance(event, TransportError):
                raise mod.ReadError(event.message, request=self._request)

    async def aclose(self) -> None:
        return None


class ScriptedTransport(*_TransportBases):  # type: ignore[misc]
    """An httpx transport that answers each request with the next script.

    Pass it as ``httpx.AsyncClient(transport=ScriptedTransport(...))`` to an adapter's
    ``http_client``. ``sleep`` (optional) plays the virtual ``at`` schedule; without it the
    timeline runs as fast as the client reads.
    """

    def __init__(self, *scripts: WireScript, sleep: Sleep | None = None) -> None:
        self._queue = _Queue(list(scripts))
        self._sleep = sleep

    @property
    def exchanges(self) -> list[WireExchange]:
        """Requests received so far."""
        return self._queue.exchanges

    @property
    def remaining(self) -> int:
        """Scripts not yet used."""
        return len(self._queue.scripts)

    def assert_exhausted(self) -> None:
        """Fail when a script was not used or a request mismatched."""
        if self._queue.mismatches:
            raise self._queue.mismatches[0]
        if self._queue.scripts:
            names = [s.name for s in self._queue.scripts]
            raise AssertionError(f"wire scripts never requested: {names}")

    async def handle_async_request(self, request: Any) -> Any:
        mod = _flavour(request)
        body = await request.aread()
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        target = request.url.raw_path.decode("ascii")
        script = self._queue.take(request.method, target, headers, body)
        pacer = _Pacer(self._sleep)
        for index, event in enumerate(script.timeline):
            await pacer.reach(event.at)
            if isinstance(event, ResponseStart):
                return mod.Response(
                    event.status,
                    headers=[(h.name, h.value) for h in event.headers],
                    stream=_ScriptedBody(script.timeline[index + 1 :], request, pacer),
                    request=request,
                )
            if isinstance(event, HttpError):
                return mod.Response(
                    event.status,
                    headers=[(h.name, h.value) for h in event.headers],
                    content=event.body.encode("utf-8"),
                    request=request,
                )
            if isinstance(event, Timeout):
                raise mod.ReadTimeout(
                    event.message or "timed out waiting for the response", request=request
                )
            if isinstance(event, Disconnect):
                raise mod.RemoteProtocolError(
                    event.message or "server disconnected without a response", request=request
                )
            if isinstance(event, TransportError):
                raise mod.ConnectError(event.message, request=request)
        raise mod.RemoteProtocolError(
            f"wire script {script.name!r} ended without a response", request=request
        )


# --- loopback server --------------------------------------------------------------------

_HOP_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})


class WireServer:
    """A loopback HTTP/1.1 server (127.0.0.1, ephemeral port) that plays scripts in order.

    Use as ``async with WireServer(*scripts) as server:`` and point an adapter at
    ``server.url(prefix)``. Bodies are sent with chunked framing so disconnects truncate them
    for real; a ``timeout`` event holds the connection silent until the client gives up
    (configure a short client read timeout in tests). A mismatching request gets HTTP 400 with
    the diff as body; :meth:`assert_exhausted` re-raises it.
    """

    def __init__(
        self, *scripts: WireScript, sleep: Sleep | None = None, hold_timeout_s: float = 30.0
    ) -> None:
        self._queue = _Queue(list(scripts))
        self._sleep = sleep
        self._hold_timeout_s = hold_timeout_s
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def exchanges(self) -> list[WireExchange]:
        """Requests received so far."""
        return self._queue.exchanges

    def url(self, prefix: str = "") -> str:
        """``http://127.0.0.1:<port><prefix>``."""
        return f"http://127.0.0.1:{self.port}{prefix}"

    def assert_exhausted(self) -> None:
        """Fail when a script was not used or a request mismatched."""
        if self._queue.mismatches:
            raise self._queue.mismatches[0]
        if self._queue.scripts:
            raise AssertionError(
                f"wire scripts never requested: {[s.name for s in self._queue.scripts]}"
            )

    async def __aenter__(self) -> WireServer:
        self._server = await asyncio.start_server(self._on_connection, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop listening and drop open connections."""
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            for task in list(self._tasks):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await self._server.wait_closed()
            self._server = None

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if task is not None:
                self._tasks.discard(task)
            if not writer.is_closing():
                writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read_request(
        self, reader: asyncio.StreamReader
    ) -> tuple[str, str, list[tuple[str, str]], bytes]:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers.append((name.strip(), value.strip()))
        lowered = {k.lower(): v for k, v in headers}
        if "chunked" in lowered.get("transfer-encoding", "").lower():
            body = bytearray()
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                body.extend(await reader.readexactly(size))
                await reader.readexactly(2)
            return method, target, headers, bytes(body)
        length = int(lowered.get("content-length", "0") or 0)
        return method, target, headers, await reader.readexactly(length) if length else b""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        method, target, headers, body = await self._read_request(reader)
        try:
            script = self._queue.take(method, target, headers, body)
        except WireMismatch as err:
            payload = json.dumps(
                {"error": {"type": "wire_script_mismatch", "message": str(err)}}
            ).encode()
            writer.write(
                b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
                + f"content-length: {len(payload)}\r\nconnection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
            return
        pacer = _Pacer(self._sleep)
        started = False
        for event in script.timeline:
            await pacer.reach(event.at)
            if isinstance(event, ResponseStart):
                writer.write(self._head(event.status, event.headers, chunked=True))
                started = True
            elif isinstance(event, HttpError):
                data = event.body.encode("utf-8")
                writer.write(self._head(event.status, event.headers, length=len(data)) + data)
                await writer.drain()
                return
            elif isinstance(event, Chunk | Sse | Body):
                data = event.data.encode("utf-8") if isinstance(event, Body) else event.payload()
                if data:
                    writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            elif isinstance(event, End):
                writer.write(b"0\r\n\r\n")
                await writer.drain()
                return
            elif isinstance(event, Disconnect | TransportError):
                await writer.drain()
                writer.transport.abort()
                return
            elif isinstance(event, Timeout):
                await writer.drain()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(reader.read(), self._hold_timeout_s)
                writer.transport.abort()
                return
            await writer.drain()
        if started:
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    @staticmethod
    def _head(
        status: int, headers: Sequence[Header], *, chunked: bool = False, length: int = 0
    ) -> bytes:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Status"
        lines = [f"HTTP/1.1 {status} {reason}"]
        lines += [f"{h.name}: {h.value}" for h in headers if h.name.lower() not in _HOP_HEADERS]
        lines.append("transfer-encoding: chunked" if chunked else f"content-length: {length}")
        lines.append("connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# --- expected_provider ------------------------------------------------------------------


def _output_events(events: Sequence[StreamEvent]) -> int:
    return sum(1 for e in events if isinstance(e, TextDelta | ReasoningDelta | ToolCallDelta))


def check_expected(
    expected: Mapping[str, Any],
    *,
    response: LlmResponse | None,
    failure: ProviderFailure | None,
    events: Sequence[StreamEvent] = (),
) -> list[str]:
    """Compare an adapter's outcome with a script's ``expected_provider`` block.

    Returns the problems (empty when everything holds). An expectation key this checker does
    not know is itself a problem, so a script can never be silently half-checked.
    """
    problems: list[str] = []

    def need_response(key: str) -> LlmResponse | None:
        if response is None:
            problems.append(f"{key}: expected a response, got failure {failure}")
        return response

    def need_failure(key: str) -> ProviderFailure | None:
        if failure is None:
            problems.append(f"{key}: expected a failure, got response {response}")
        return failure

    for key, want in expected.items():
        if key == "terminal_reason":
            if (r := need_response(key)) is not None and r.terminal_reason != want:
                problems.append(f"terminal_reason: expected {want!r}, got {r.terminal_reason!r}")
        elif key == "text":
            if (r := need_response(key)) is not None and r.text != want:
                problems.append(f"text: expected {want!r}, got {r.text!r}")
        elif key == "tool_names":
            names = [c.name for c in r.tool_calls] if (r := need_response(key)) else None
            if r is not None and names != list(want):
                problems.append(f"tool_names: expected {want!r}, got {names!r}")
        elif key == "status":
            if (f := need_failure(key)) is not None and f.http_status != want:
                problems.append(f"status: expected {want!r}, got {f.http_status!r}")
        elif key in ("retryable_after_classification", "retryable"):
            if (f := need_failure(key)) is not None and f.retryable != want:
                problems.append(f"{key}: expected {want!r}, got {f.retryable!r} ({f.kind})")
        elif key == "stream_failure":
            got = failure is not None and failure.kind in ("stream", "timeout")
            if got != want:
                problems.append(f"stream_failure: expected {want!r}, got {failure!r}")
        elif key == "stream_error":
            if (f := need_failure(key)) is not None and (
                f.kind not in ("stream", "timeout") or str(want) not in f.message
            ):
                problems.append(f"stream_error: expected a stream failure saying {want!r}, got {f}")
        elif key == "kind":
            if (f := need_failure(key)) is not None and f.kind != str(want).lower():
                problems.append(f"kind: expected {want!r}, got {f.kind!r}")
        elif key == "code":
            if (f := need_failure(key)) is not None and f.code != want:
                problems.append(f"code: expected {want!r}, got {f.code!r}")
        elif key == "stream_events_committed":
            if _output_events(events) != want:
                problems.append(
                    f"stream_events_committed: expected {want}, got {_output_events(events)}"
                )
        else:
            problems.append(f"{key}: unknown expectation (checker does not support it)")
    return problems
