"""``fetch_url`` and ``search_web`` against a loopback HTTP server (no network)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import lash
from lash.testing import ScriptedProvider, reply
from lash.tools.builtin import web_tools
from lash.tools.builtin.web import WEB_API_KEY_ENV, WEB_BASE_URL_ENV, html_to_text
from lash.tools.decorator import FunctionTool

from .helpers import run

KEY = "test-key"

PAGE = b"""<!doctype html><html><head><title> Lash  docs </title>
<style>body { color: red }</style><script>var hidden = "nope";</script></head>
<body><nav>Home</nav><h1>Durable turns</h1><p>A turn is
   durable &amp; fenced.</p><ul><li>one</li><li>two</li></ul>
<pre>line 1
  line 2</pre><noscript>enable js</noscript></body></html>"""


class Server:
    """A threaded loopback server; ``release`` frees handlers parked on slow routes."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.searches: list[tuple[str, str | None, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                path = self.path
                if path == "/page.html":
                    self.send(200, PAGE, "text/html; charset=utf-8")
                elif path == "/latin1.txt":
                    self.send(200, "café".encode("latin-1"), "text/plain; charset=iso-8859-1")
                elif path == "/big.txt":
                    self.send(200, b"x" * 300_000, "text/plain")
                elif path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", "/page.html")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif path == "/image.png":
                    self.send(200, b"\x89PNG\r\n\x1a\n", "image/png")
                elif path == "/missing":
                    self.send(404, b"not here", "text/plain")
                elif path == "/boom":
                    self.send(503, b"down", "text/plain")
                elif path == "/busy":
                    self.send(429, b"slow down", "text/plain")
                elif path == "/stall":
                    outer.release.wait(10)
                elif path == "/trickle":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", "100")
                    self.end_headers()
                    self.wfile.write(b"first bytes")
                    self.wfile.flush()
                    outer.release.wait(10)
                else:
                    self.send(404, b"?", "text/plain")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"null")
                auth = self.headers.get("Authorization")
                outer.searches.append((self.path, auth, body))
                if self.path == "/ok/search":
                    if auth != f"Bearer {KEY}":
                        self.send(401, b'{"detail": "bad key"}', "application/json")
                        return
                    hits = [
                        {"title": f"T{n}", "url": f"https://e.x/{n}", "content": "c" * 5000}
                        for n in range(body["max_results"] + 3)
                    ]
                    out = {"query": body["query"], "results": hits, "answer": None}
                    self.send(200, json.dumps(out).encode(), "application/json")
                elif self.path == "/busy/search":
                    self.send(429, b"{}", "application/json")
                elif self.path == "/garbage/search":
                    self.send(200, b'{"results": "nope"}', "application/json")
                elif self.path == "/huge/search":
                    self.send(200, b'{"results": []}' + b" " * 300_000, "application/json")
                elif self.path == "/stall/search":
                    outer.release.wait(10)
                else:
                    self.send(404, b"{}", "application/json")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.closed = False
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    try:
        yield srv
    finally:
        srv.close()


def tools_for(server: Server, prefix: str = "ok", **kwargs: Any) -> dict[str, FunctionTool]:
    made = web_tools(KEY, base_url=f"{server.url}/{prefix}/", env={}, **kwargs)
    return {t.name: t for t in made}


# --- configuration ------------------------------------------------------------------------


def test_no_key_means_no_tools() -> None:
    assert web_tools(env={}) == []
    assert web_tools(None, env={WEB_API_KEY_ENV: ""}) == []


def test_key_from_environment_and_configurable_base_url() -> None:
    made = web_tools(env={WEB_API_KEY_ENV: "k", WEB_BASE_URL_ENV: "http://x"})
    assert [t.name for t in made] == ["fetch_url", "search_web"]
    assert all(t.retry_policy == "never" for t in made)
    search = made[1].spec.parameters
    assert search["required"] == ["query"]
    assert search["properties"]["limit"]["maximum"] == 20


def test_invalid_limits_are_rejected_at_build_time() -> None:
    with pytest.raises(ValueError, match="positive"):
        web_tools("k", timeout_s=0, env={})


async def test_keyless_catalog_offers_no_web_tools() -> None:
    provider = ScriptedProvider([reply("hi")])
    core = (
        lash.LashCore.builder()
        .provider(provider)
        .model(lash.ModelSpec("m"))
        .store(lash.stores.MemoryStore())
        .effect_host(lash.InlineEffectHost())
        .tools([*web_tools(env={})])
        .build()
    )
    session = await core.session("s").open()
    await session.turn("hello").run()
    assert [t.name for t in provider.requests[0].tools] == []


# --- fetch_url ----------------------------------------------------------------------------


async def test_fetch_url_reduces_html_to_readable_text(server: Server) -> None:
    out = await run(tools_for(server)["fetch_url"], {"url": f"{server.url}/redirect"})
    assert out.ok, out.payload
    payload = out.payload
    assert payload["url"] == f"{server.url}/page.html"  # redirect followed
    assert payload["title"] == "Lash docs"
    assert payload["content_type"] == "text/html"
    assert payload["truncated"] is False
    content = payload["content"]
    assert "Durable turns\nA turn is durable & fenced.\n- one\n- two" in content
    assert "line 1\n  line 2" in content
    assert "hidden" not in content and "color" not in content and "enable js" not in content


async def test_fetch_url_honours_the_declared_charset(server: Server) -> None:
    out = await run(tools_for(server)["fetch_url"], {"url": f"{server.url}/latin1.txt"})
    assert out.payload["content"] == "café"
    assert "title" not in out.payload


async def test_fetch_url_caps_content_and_wire_bytes(server: Server) -> None:
    fetch = tools_for(server, max_content_chars=1000)["fetch_url"]
    out = await run(fetch, {"url": f"{server.url}/big.txt"})
    assert (len(out.payload["content"]), out.payload["truncated"]) == (1000, True)
    wire = tools_for(server, max_response_bytes=4096)["fetch_url"]
    out = await run(wire, {"url": f"{server.url}/big.txt"})
    assert (len(out.payload["content"]), out.payload["truncated"]) == (4096, True)


@pytest.mark.parametrize(
    ("path", "code", "needle"),
    [
        ("/missing", "http_error", "HTTP 404"),
        ("/boom", "http_error", "HTTP 503"),
        ("/busy", "rate_limited", "429"),
        ("/image.png", "unsupported_content_type", "image/png"),
    ],
)
async def test_fetch_url_failures_are_tool_errors_with_codes(
    server: Server, path: str, code: str, needle: str
) -> None:
    out = await run(tools_for(server)["fetch_url"], {"url": f"{server.url}{path}"})
    assert (out.status, out.error_code) == ("failure", code)
    assert needle in out.payload


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://h/x", "not a url", "http://"])
async def test_fetch_url_rejects_non_http_urls(url: str) -> None:
    fetch = {t.name: t for t in web_tools(KEY, env={})}["fetch_url"]
    out = await run(fetch, {"url": url})
    assert out.error_code == "invalid_url"


async def test_fetch_url_connection_refused_is_a_network_error(server: Server) -> None:
    url = server.url
    server.close()
    out = await run(tools_for(server)["fetch_url"], {"url": f"{url}/page.html"})
    assert out.error_code == "network_error"


@pytest.mark.parametrize("path", ["/stall", "/trickle"])
async def test_fetch_url_times_out(server: Server, path: str) -> None:
    fetch = tools_for(server, timeout_s=0.3)["fetch_url"]
    out = await run(fetch, {"url": f"{server.url}{path}"})
    assert (out.status, out.error_code) == ("failure", "timeout")
    assert "0.3s" in out.payload


# --- search_web ---------------------------------------------------------------------------


async def test_search_web_posts_the_documented_contract(server: Server) -> None:
    out = await run(tools_for(server)["search_web"], {"query": "durable agents", "limit": 2})
    assert out.ok, out.payload
    assert server.searches == [
        ("/ok/search", f"Bearer {KEY}", {"query": "durable agents", "max_results": 2})
    ]
    results = out.payload["results"]
    assert [r["title"] for r in results] == ["T0", "T1"]  # capped at limit
    assert results[0]["url"] == "https://e.x/0"
    assert len(results[0]["content"]) == 2000
    assert out.payload["query"] == "durable agents"


async def test_search_web_default_limit_and_argument_checks(server: Server) -> None:
    search = tools_for(server)["search_web"]
    out = await run(search, {"query": "x"})
    assert len(out.payload["results"]) == 5
    for bad in ({"query": ""}, {"query": "x", "limit": 21}, {"query": "x", "limit": 0}, {}):
        assert (await run(search, bad)).error_code == "invalid_tool_args"


async def test_search_web_wrong_key_is_an_auth_failure(server: Server) -> None:
    made = web_tools("wrong", base_url=f"{server.url}/ok", env={})
    out = await run(made[1], {"query": "x"})
    assert (out.status, out.error_code) == ("failure", "web_auth_failed")
    assert WEB_API_KEY_ENV in out.payload


@pytest.mark.parametrize(
    ("prefix", "code"),
    [
        ("busy", "rate_limited"),
        ("garbage", "bad_response"),
        ("huge", "response_too_large"),
        ("nowhere", "http_error"),
    ],
)
async def test_search_web_failures_are_tool_errors_with_codes(
    server: Server, prefix: str, code: str
) -> None:
    search = tools_for(server, prefix, max_response_bytes=100_000)["search_web"]
    out = await run(search, {"query": "x"})
    assert (out.status, out.error_code) == ("failure", code)


async def test_search_web_times_out(server: Server) -> None:
    search = tools_for(server, "stall", timeout_s=0.3)["search_web"]
    out = await run(search, {"query": "x"})
    assert out.error_code == "timeout"


def test_html_to_text_survives_an_unclosed_head() -> None:
    title, text = html_to_text("<html><head><title>T</title><body><p>kept</p>")
    assert (title, text) == ("T", "kept")
