"""MCP servers as tool sources: naming, config errors, a scripted turn calling a real stdio
server, a server killed mid-call, reconnection, timeouts and streamable HTTP."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp")

from lash.plugins.mcp import (
    HttpServer,
    McpConfigError,
    McpServers,
    SseServer,
    StdioServer,
    normalize_identifier,
    prefixed_tool_name,
)
from lash.testing import ScriptedProvider, reply, tool_call

SERVER = str(Path(__file__).with_name("mcp_server.py"))


def stdio(**options: Any) -> StdioServer:
    return StdioServer(command=sys.executable, args=[SERVER], **options)


@pytest.fixture
async def pool() -> AsyncIterator[McpServers]:
    servers = McpServers({"lash-test": stdio()})
    await servers.start()
    yield servers
    await servers.aclose()


def test_names_are_normalised_and_deduplicated() -> None:
    assert normalize_identifier("Spotify-Search Songs") == "spotify_search_songs"
    assert normalize_identifier("___foo___bar___") == "foo_bar"
    assert normalize_identifier("!!!") == "tool"
    assert normalize_identifier("Ünïcode-Tool") == "n_code_tool"
    used: set[str] = set()
    assert prefixed_tool_name("My Server", "do-it", used) == "mcp__my_server__do_it"
    assert prefixed_tool_name("my_server", "Do It", used) == "mcp__my_server__do_it_2"
    assert prefixed_tool_name("my-server", "do_it", used) == "mcp__my_server__do_it_3"


def test_invalid_configs_are_refused() -> None:
    with pytest.raises(McpConfigError, match="streamable HTTP"):
        McpServers({"old": SseServer(url="http://localhost:1/sse")})
    with pytest.raises(McpConfigError):
        StdioServer(command=" ")
    with pytest.raises(McpConfigError):
        HttpServer(url="ftp://example.invalid/mcp")
    with pytest.raises(McpConfigError, match="header name"):
        HttpServer(url="http://localhost:1/mcp", headers={"Bad Header": "x"})
    with pytest.raises(McpConfigError, match="line break"):
        HttpServer(url="http://localhost:1/mcp", headers={"X-Token": "a\r\nb"})
    with pytest.raises(McpConfigError):
        stdio(call_timeout_s=0)


async def test_a_scripted_turn_calls_an_mcp_tool(pool: McpServers, make_core: Any) -> None:
    assert pool.statuses()["lash-test"].state == "connected"
    names = [t.spec.name for t in pool.tools()]
    assert names == [
        "mcp__lash_test__add",
        "mcp__lash_test__echo_text",
        "mcp__lash_test__fail",
        "mcp__lash_test__block",
        "mcp__lash_test__pid",
        "mcp__lash_test__slow",
    ]
    provider = ScriptedProvider(
        [
            [
                tool_call("mcp__lash_test__add", {"a": 2, "b": 3}, "c-add"),
                tool_call("mcp__lash_test__echo_text", {"text": "hi"}, "c-echo"),
                tool_call("mcp__lash_test__fail", {"reason": "test"}, "c-fail"),
            ],
            reply("ok"),
        ]
    )
    core = make_core(provider, plugins=[pool])
    session = await core.session("s").open()
    result = await session.turn("add").run()

    offered = {t.name: t for t in provider.requests[0].tools}
    assert offered["mcp__lash_test__add"].description == "[MCP lash-test] Add two integers."
    assert offered["mcp__lash_test__add"].parameters["required"] == ["a", "b"]
    add, echo, fail = result.tool_calls
    assert add.status == "success" and add.output == {"result": 5}
    assert echo.status == "success" and echo.output == {"result": "hi"}
    assert fail.status == "failure" and fail.error_code == "mcp_tool_error"
    assert "Error executing tool fail" in fail.output["message"]
    assert result.assistant_text == "ok"


async def test_a_server_killed_mid_call_is_a_tool_error_and_the_next_call_reconnects(
    pool: McpServers, make_core: Any, tmp_path: Path
) -> None:
    marker = tmp_path / "pid"
    provider = ScriptedProvider(
        [
            tool_call("mcp__lash_test__block", {"marker": str(marker)}, "c-block"),
            reply("the server died"),
            tool_call("mcp__lash_test__add", {"a": 1, "b": 1}, "c-add"),
            reply("back"),
        ]
    )
    core = make_core(provider, plugins=[pool])
    session = await core.session("s").open()
    turn = asyncio.ensure_future(session.turn("block").run())
    for _ in range(500):
        if marker.exists() and marker.read_text():
            break
        await asyncio.sleep(0.01)
    first_pid = int(marker.read_text())
    os.kill(first_pid, signal.SIGKILL)
    result = await asyncio.wait_for(turn, 30)

    record = result.tool_calls[0]
    assert record.status == "failure"
    assert record.error_code == "mcp_connection_lost"
    assert "next call reconnects" in record.output
    seen = provider.requests[1].messages[-1]
    assert seen.role == "tool" and "went away" in seen.text
    # the catalog does not flap while the server is down
    assert "mcp__lash_test__add" in [t.spec.name for t in pool.tools()]

    again = await session.turn("add").run()
    assert again.tool_calls[0].status == "success"
    assert again.tool_calls[0].output == {"result": 2}
    assert pool.statuses()["lash-test"].state == "connected"


async def test_a_call_timeout_is_a_tool_error(make_core: Any) -> None:
    async with McpServers({"t": stdio(call_timeout_s=0.2)}) as servers:
        provider = ScriptedProvider(
            [tool_call("mcp__t__slow", {"seconds": 30}, "c1"), reply("gave up")]
        )
        core = make_core(provider, plugins=[servers])
        session = await core.session("s").open()
        result = await session.turn("wait").run()
    assert result.tool_calls[0].error_code == "mcp_call_timeout"
    assert "did not answer within 0.2s" in result.tool_calls[0].output


async def test_unreachable_and_hanging_servers_do_not_fail_attach() -> None:
    servers = McpServers()
    missing = await servers.attach_server("missing", StdioServer(command="/nonexistent/mcp"))
    assert missing.state == "failed" and missing.error is not None
    silent = await servers.attach_server(
        "silent",
        StdioServer(
            command=sys.executable,
            args=["-c", "import sys; sys.stdin.read()"],
            startup_timeout_s=0.3,
        ),
    )
    assert silent.state == "failed"
    assert silent.error is not None and "startup timeout" in silent.error
    assert servers.tools() == ()
    with pytest.raises(McpConfigError, match="already attached"):
        await servers.attach_server("missing", StdioServer(command="/nonexistent/mcp"))
    assert await servers.detach_server("missing")
    assert not await servers.detach_server("missing")
    await servers.aclose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_streamable_http_server(make_core: Any) -> None:
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        SERVER,
        "--http",
        str(port),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        for _ in range(500):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.02)
                continue
            writer.close()
            await writer.wait_closed()
            break
        servers = McpServers()
        status = await servers.attach_server(
            "web", HttpServer(url=f"http://127.0.0.1:{port}/mcp", headers={"X-Test": "1"})
        )
        assert status.state == "connected", status.error
        provider = ScriptedProvider(
            [tool_call("mcp__web__add", {"a": 4, "b": 5}, "c1"), reply("9")]
        )
        core = make_core(provider, plugins=[servers])
        session = await core.session("s").open()
        result = await session.turn("add").run()
        assert result.tool_calls[0].output == {"result": 9}
        await servers.aclose()
    finally:
        proc.kill()
        await proc.wait()


async def test_calls_to_one_server_run_concurrently_and_all_fail_when_it_dies(
    pool: McpServers, make_core: Any, tmp_path: Path
) -> None:
    markers = [tmp_path / "one", tmp_path / "two"]
    provider = ScriptedProvider(
        [
            [
                tool_call("mcp__lash_test__block", {"marker": str(m)}, f"c{i}")
                for i, m in enumerate(markers)
            ],
            reply("both failed"),
        ]
    )
    core = make_core(provider, plugins=[pool])
    session = await core.session("s").open()
    turn = asyncio.ensure_future(session.turn("block twice").run())
    # both calls are inside the server at once: they are not serialised per server
    for _ in range(500):
        if all(m.exists() and m.read_text() for m in markers):
            break
        await asyncio.sleep(0.01)
    pids = {int(m.read_text()) for m in markers}
    assert len(pids) == 1
    os.kill(pids.pop(), signal.SIGKILL)
    result = await asyncio.wait_for(turn, 30)
    assert [r.error_code for r in result.tool_calls] == [
        "mcp_connection_lost",
        "mcp_connection_lost",
    ]


async def test_a_server_attached_later_joins_the_next_turn(make_core: Any) -> None:
    servers = McpServers()
    provider = ScriptedProvider(
        [reply("first"), tool_call("mcp__late__add", {"a": 1, "b": 2}), reply("3")]
    )
    core = make_core(provider, plugins=[servers])
    session = await core.session("s").open()
    await session.turn("before").run()
    assert provider.requests[0].tools == ()
    await servers.attach_server("late", stdio())
    result = await session.turn("after").run()
    assert result.tool_calls[0].output == {"result": 3}
    await servers.aclose()


async def test_a_server_that_died_while_idle_is_reconnected_before_the_next_call(
    pool: McpServers, make_core: Any
) -> None:
    provider = ScriptedProvider(
        [
            tool_call("mcp__lash_test__pid", {}, "c1"),
            reply("got it"),
            tool_call("mcp__lash_test__pid", {}, "c2"),
            reply("again"),
        ]
    )
    core = make_core(provider, plugins=[pool])
    session = await core.session("s").open()
    first = await session.turn("pid").run()
    first_pid = first.tool_calls[0].output["result"]
    os.kill(first_pid, signal.SIGKILL)
    for _ in range(500):
        if pool.statuses()["lash-test"].state != "connected":
            break
        await asyncio.sleep(0.01)
    assert pool.statuses()["lash-test"].state == "disconnected"
    second = await session.turn("pid again").run()
    assert second.tool_calls[0].status == "success"
    assert second.tool_calls[0].output["result"] != first_pid
