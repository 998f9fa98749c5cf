"""The OpenAI SDK client both OpenAI dialects share, and how a raw body is opened through it.

The SDK owns authentication, base URLs, headers and the mapping of non-2xx responses to
``APIStatusError``; we ask it for the *raw* streamed ``httpx.Response`` so our own byte-level
SSE framing sees every event exactly as sent (unknown fields, ``[DONE]``, split code points,
truncation), which the typed stream helpers would hide.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, cast

import httpx
import httpx2
import openai

from lash.providers._classify import classify_http, transport_failure
from lash.providers.base import ProviderError

__all__ = ["make_client", "open_raw"]

_RAW_STREAM = {"X-Stainless-Raw-Response": "stream"}
_NO_KEY = "no-key"


def make_client(
    *,
    api_key: str | None,
    base_url: str,
    http_client: httpx.AsyncClient | httpx2.AsyncClient | None,
    default_headers: Mapping[str, str] | None,
    request_timeout_s: float,
    chunk_timeout_s: float,
) -> tuple[openai.AsyncOpenAI, httpx.AsyncClient | httpx2.AsyncClient]:
    """An SDK client that never retries (the ladder does) over a replaceable httpx client."""
    timeout = httpx.Timeout(request_timeout_s, read=chunk_timeout_s)
    client = http_client if http_client is not None else httpx.AsyncClient(timeout=timeout)
    # An explicit placeholder key: the SDK would otherwise read OPENAI_API_KEY from the
    # environment and send it to whatever compatible server base_url names.
    sdk = openai.AsyncOpenAI(
        api_key=api_key or _NO_KEY,
        base_url=base_url,
        http_client=cast(Any, client),  # the SDK accepts httpx and httpx2 clients
        max_retries=0,
        timeout=cast(Any, timeout),
        default_headers=dict(default_headers or {}),
    )
    return sdk, client


@asynccontextmanager
async def open_raw(
    sdk: openai.AsyncOpenAI,
    path: str,
    body: dict[str, Any],
    *,
    headers: Mapping[str, str] | None = None,
) -> AsyncIterator[httpx.Response]:
    """POST ``body`` and yield the unread response; failures raise classified errors."""
    try:
        response: httpx.Response = await sdk.post(
            path,
            cast_to=httpx.Response,
            body=body,
            options={"headers": {**_RAW_STREAM, **(headers or {})}},
        )
    except openai.APIStatusError as err:
        raise ProviderError(
            classify_http(err.status_code, err.response.headers, err.response.text)
        ) from err
    except openai.APIConnectionError as err:
        raise ProviderError(transport_failure(err)) from err
    try:
        yield response
    finally:
        await response.aclose()
