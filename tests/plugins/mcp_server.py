"""A small MCP server for the MCP plugin tests (stdio by default, ``--http PORT`` for
streamable HTTP).

Tools: ``add`` (structured result), ``Echo-Text`` (a name that needs normalising),
``fail`` (an ``is_error`` result), ``pid``, ``block`` (writes its pid to a marker file, then waits
until killed) and ``slow`` (sleeps ``seconds``).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from mcp.server.mcpserver import MCPServer

server = MCPServer("lash-test")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool(name="Echo-Text")
def echo_text(text: str) -> str:
    """Echo the text back."""
    return text


@server.tool()
def fail(reason: str) -> str:
    """Always fails."""
    raise ValueError(f"failed on purpose: {reason}")


@server.tool()
async def block(marker: str) -> str:
    """Record this server's pid in ``marker`` and wait until the process is killed."""
    Path(marker).write_text(str(os.getpid()))
    await asyncio.Event().wait()
    return "unreachable"


@server.tool()
def pid() -> int:
    """This server's process id."""
    return os.getpid()


@server.tool()
async def slow(seconds: float) -> str:
    """Sleep, then answer."""
    await asyncio.sleep(seconds)
    return "slept"


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run("stdio")
