"""``fetch_url`` and ``search_web``: the web tools, offered only when a search API key is set.

``web_tools(api_key=None, base_url=None)`` returns both tools when a key is given (or found in
``$LASH_WEB_API_KEY``) and ``[]`` otherwise, so a catalog built from it simply lacks them.
``base_url`` (or ``$LASH_WEB_BASE_URL``) defaults to ``https://api.tavily.com``.

The search contract is Tavily-compatible, and small enough to put in front of any engine::

    POST {base_url}/search
    Authorization: Bearer <api_key>
    {"query": "<text>", "max_results": <1..20>}
    -> 200 {"results": [{"title": "...", "url": "...", "content": "..."}, ...]}

``fetch_url`` does not go through that API: it GETs the page itself (http/https only, redirects
followed) and returns its readable text, HTML reduced to text, capped in size.

Failures are tool errors with stable codes: ``invalid_url``, ``http_error`` (status in the
message), ``web_auth_failed`` (401/403 from the search API), ``rate_limited`` (429),
``timeout``, ``network_error``, ``unsupported_content_type``, ``response_too_large`` and
``bad_response``. Needs ``httpx`` (imported only when the tools are built).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Mapping
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

import msgspec

from lash.tools.base import ToolError
from lash.tools.decorator import FunctionTool, tool

if TYPE_CHECKING:
    import httpx

__all__ = [
    "DEFAULT_WEB_BASE_URL",
    "WEB_API_KEY_ENV",
    "WEB_BASE_URL_ENV",
    "html_to_text",
    "web_tools",
]

WEB_API_KEY_ENV = "LASH_WEB_API_KEY"
WEB_BASE_URL_ENV = "LASH_WEB_BASE_URL"
DEFAULT_WEB_BASE_URL = "https://api.tavily.com"
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_CONTENT_CHARS = 50_000
DEFAULT_MAX_RESPONSE_BYTES = 5 * 1024 * 1024
MAX_RESULT_CONTENT_CHARS = 2_000
_TEXT_TYPES = ("application/json", "application/xml", "application/xhtml+xml")


def web_tools(
    api_key: str | None = None,
    *,
    base_url: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_content_chars: int = DEFAULT_MAX_CONTENT_CHARS,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    user_agent: str = "lash-fetch/1",
    env: Mapping[str, str] | None = None,
) -> list[FunctionTool]:
    """``[fetch_url, search_web]`` when an API key is configured, else ``[]``.

    ``env`` replaces ``os.environ`` for the ``LASH_WEB_*`` lookups (tests, embedding hosts).
    ``timeout_s`` bounds a whole call (connect, headers and body); ``max_response_bytes``
    caps what is read off the wire, ``max_content_chars`` what ``fetch_url`` returns.
    """
    environ = os.environ if env is None else env
    key = api_key or environ.get(WEB_API_KEY_ENV) or None
    if key is None:
        return []
    if timeout_s <= 0 or max_content_chars < 1 or max_response_bytes < 1:
        raise ValueError("timeout_s, max_content_chars and max_response_bytes must be positive")
    try:
        import httpx  # noqa: F401 - fail at build time, not on the first call
    except ImportError as err:  # pragma: no cover - httpx ships with the dev extras
        raise ImportError("the web tools need httpx: pip install httpx") from err
    limits = _Limits(timeout_s, max_content_chars, max_response_bytes, user_agent)
    root = (base_url or environ.get(WEB_BASE_URL_ENV) or DEFAULT_WEB_BASE_URL).rstrip("/")
    return [_make_fetch_url(limits), _make_search_web(limits, root, key)]


class _Limits(msgspec.Struct, frozen=True):
    timeout_s: float
    max_content_chars: int
    max_response_bytes: int
    user_agent: str


def _make_fetch_url(limits: _Limits) -> FunctionTool:
    @tool(name="fetch_url")
    async def fetch_url(
        url: Annotated[str, "The http(s) URL to read."],
    ) -> dict[str, Any]:
        """Fetch one web page and return its readable text (HTML is reduced to text, long pages are cut). Use `search_web` first when you do not know the URL."""  # noqa: E501
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ToolError(f"Not an http(s) URL: {url!r}", code="invalid_url")
        response, body, cut = await _request(limits, "GET", url)
        media_type, charset = _content_type(response.headers.get("content-type", ""))
        if not (media_type.startswith("text/") or media_type in _TEXT_TYPES or not media_type):
            raise ToolError(
                f"{url} returned {media_type}, which has no readable text.",
                code="unsupported_content_type",
            )
        text = body.decode(charset or "utf-8", errors="replace")
        title: str | None = None
        if media_type in ("text/html", "application/xhtml+xml") or (
            not media_type and "<html" in text[:1000].lower()
        ):
            title, text = html_to_text(text)
        truncated = cut or len(text) > limits.max_content_chars
        content = text[: limits.max_content_chars]
        result: dict[str, Any] = {
            "url": str(response.url),
            "status": response.status_code,
            "content_type": media_type or None,
            "content": content,
            "truncated": truncated,
        }
        if title:
            result["title"] = title
        return result

    return fetch_url


def _make_search_web(limits: _Limits, root: str, key: str) -> FunctionTool:
    @tool(name="search_web")
    async def search_web(
        query: Annotated[str, msgspec.Meta(min_length=1, description="What to search for.")],
        limit: Annotated[int, msgspec.Meta(ge=1, le=20, description="How many results.")] = 5,
    ) -> dict[str, Any]:
        """Search the web. Returns up to `limit` results, each with title, url and a content snippet; read a result in full with `fetch_url`."""  # noqa: E501
        response, body, cut = await _request(
            limits,
            "POST",
            f"{root}/search",
            json={"query": query, "max_results": limit},
            headers={"Authorization": f"Bearer {key}"},
            api=True,
        )
        if cut:
            raise ToolError(
                f"The search API answered with more than {limits.max_response_bytes} bytes.",
                code="response_too_large",
            )
        try:
            decoded = msgspec.json.decode(body, type=_SearchResponse)
        except msgspec.DecodeError as err:
            raise ToolError(
                f"The search API answered with an unexpected body: {err}", code="bad_response"
            ) from err
        results = [
            {
                "title": hit.title,
                "url": hit.url,
                "content": hit.content[:MAX_RESULT_CONTENT_CHARS],
            }
            for hit in decoded.results[:limit]
        ]
        return {"query": query, "results": results}

    return search_web


class _SearchHit(msgspec.Struct, frozen=True):
    url: str
    title: str = ""
    content: str = ""


class _SearchResponse(msgspec.Struct, frozen=True):
    results: list[_SearchHit]


async def _request(
    limits: _Limits,
    method: str,
    url: str,
    *,
    json: Any = None,
    headers: Mapping[str, str] | None = None,
    api: bool = False,
) -> tuple[httpx.Response, bytes, bool]:
    """One request, body read up to the byte cap: ``(response, body, cut)``.

    The whole exchange sits under one deadline, so a server that trickles bytes cannot hold
    the call past ``timeout_s``. HTTP failures become :class:`ToolError` with stable codes.
    """
    import httpx

    all_headers = {"User-Agent": limits.user_agent, **(headers or {})}
    try:
        async with asyncio.timeout(limits.timeout_s):
            async with (
                httpx.AsyncClient(follow_redirects=True, timeout=limits.timeout_s) as client,
                client.stream(method, url, json=json, headers=all_headers) as response,
            ):
                if response.status_code >= 400:
                    await response.aclose()
                    raise _status_error(response.status_code, url, api=api)
                body, cut = await _read_capped(response, limits.max_response_bytes)
                return response, body, cut
    except TimeoutError as err:
        raise ToolError(
            f"{method} {url} did not finish within {limits.timeout_s:g}s.", code="timeout"
        ) from err
    except httpx.TimeoutException as err:
        raise ToolError(
            f"{method} {url} did not finish within {limits.timeout_s:g}s.", code="timeout"
        ) from err
    except httpx.HTTPError as err:
        raise ToolError(
            f"{method} {url} failed: {type(err).__name__}: {err}", code="network_error"
        ) from err


async def _read_capped(response: httpx.Response, cap: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        room = cap - size
        if len(chunk) > room:
            chunks.append(chunk[:room])
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), False


def _status_error(status: int, url: str, *, api: bool) -> ToolError:
    if status == 429:
        return ToolError(f"{url} answered 429 Too Many Requests.", code="rate_limited")
    if api and status in (401, 403):
        return ToolError(
            f"The search API rejected the key (HTTP {status}); check ${WEB_API_KEY_ENV}.",
            code="web_auth_failed",
        )
    return ToolError(f"{url} answered HTTP {status}.", code="http_error")


def _content_type(header: str) -> tuple[str, str | None]:
    media_type, _, params = header.partition(";")
    match = re.search(r"charset\s*=\s*\"?([\w.:-]+)", params, re.IGNORECASE)
    charset = match.group(1) if match else None
    if charset is not None:
        try:
            "".encode(charset)
        except LookupError:
            charset = None
    return media_type.strip().lower(), charset


_SKIP = frozenset({"script", "style", "noscript", "template", "svg", "head", "iframe", "object"})
_BLOCK = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt",
        "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5",
        "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table",
        "td", "th", "tr", "ul",
    }
)  # fmt: skip
_VOID = frozenset({"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "wbr"})


class _TextExtractor(HTMLParser):
    """Collects visible text, one line per block element; skips scripts, styles and head."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.current: list[str] = []
        self.skipping: list[str] = []
        self.in_title = False
        self.title: list[str] = []
        self.in_pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self.in_title = True
        if tag == "body" and "head" in self.skipping:
            self.skipping.clear()  # an unclosed <head> must not swallow the page
        if tag in _SKIP and tag not in _VOID:
            self.skipping.append(tag)
        if tag in _BLOCK:
            self._break()
        if tag == "pre":
            self.in_pre += 1
        if tag == "li" and not self.skipping:
            self.current.append("- ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        if tag in self.skipping:
            while self.skipping.pop() != tag:
                pass
        if tag in _BLOCK:
            self._break()
        if tag == "pre" and self.in_pre:
            self.in_pre -= 1

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title.append(data)
            return
        if self.skipping:
            return
        if self.in_pre:
            *whole, last = data.split("\n")
            for piece in whole:
                self.current.append(piece)
                self._break(keep_blank=True)
            self.current.append(last)
        else:
            self.current.append(re.sub(r"\s+", " ", data))

    def _break(self, *, keep_blank: bool = False) -> None:
        line = "".join(self.current)
        line = line.rstrip() if self.in_pre else line.strip()
        self.current = []
        if line or keep_blank:
            self.lines.append(line)

    def text(self) -> str:
        self._break()
        return re.sub(r"\n{3,}", "\n\n", "\n".join(self.lines)).strip()


def html_to_text(html: str) -> tuple[str | None, str]:
    """``(title, readable text)`` of an HTML document (no layout, no links, no scripts)."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    title = re.sub(r"\s+", " ", "".join(parser.title)).strip() or None
    return title, parser.text()
