"""Build the provider adapter and model spec a :class:`~lash.cli.config.Settings` names."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, cast

from lash.cli.config import SCRIPTED, Settings
from lash.cli.errors import CliError
from lash.providers.base import LlmProvider
from lash.types import ModelSpec

__all__ = ["build_provider", "model_spec", "scripted_steps"]


def model_spec(settings: Settings) -> ModelSpec:
    """The session's model."""
    return ModelSpec(
        settings.model,
        context_window=settings.context_window or 128_000,
        max_output_tokens=settings.max_output_tokens,
    )


def build_provider(settings: Settings, env: Mapping[str, str] | None = None) -> LlmProvider:
    """The adapter; SDKs are imported only for the kind chosen."""
    kind, key, url = settings.kind, settings.api_key, settings.base_url
    if kind == SCRIPTED:
        return _scripted(env if env is not None else os.environ)
    try:
        if kind == "openai":
            from lash.providers.openai_responses import OpenAIResponsesProvider

            return OpenAIResponsesProvider(api_key=key, base_url=url)
        if kind == "anthropic":
            from lash.providers.anthropic import AnthropicProvider

            return AnthropicProvider(api_key=key, base_url=url)
        if kind == "google":
            from lash.providers.gemini import GeminiProvider

            return GeminiProvider(api_key=key, base_url=url)
        from lash.providers.openai_chat import OpenAIChatProvider

        if kind == "openrouter":
            options: dict[str, Any] = {"base_url": url} if url else {}
            return OpenAIChatProvider.openrouter(api_key=key or "", **options)
        return OpenAIChatProvider(api_key=key or "unused", base_url=url)
    except ImportError as err:
        raise CliError(
            f"provider {settings.name} needs an SDK that is not installed ({err.name}); "
            f"install lash-runtime[{_extra(kind)}]"
        ) from None


def _extra(kind: str) -> str:
    return {"anthropic": "anthropic", "google": "google"}.get(kind, "openai")


def scripted_steps(raw: Any) -> list[Any]:
    """Decode the hidden scripted model's steps (``LASH_SCRIPTED_STEPS``, a JSON file).

    Each step is ``{"reply": text}``, ``{"tool_call": {"name", "arguments", "call_id"?}}``,
    ``{"stall": partial_text}`` or ``{"error": kind}``.
    """
    from lash.testing import provider_error, reply, stall, tool_call

    if not isinstance(raw, list):
        raise CliError("LASH_SCRIPTED_STEPS must hold a JSON list of steps")
    steps: list[Any] = []
    for step in raw:
        if not isinstance(step, dict) or len(step) != 1:
            raise CliError(f"bad scripted step {step!r}")
        ((kind, value),) = step.items()
        if kind == "reply":
            steps.append(reply(str(value)))
        elif kind == "tool_call":
            steps.append(tool_call(value["name"], value.get("arguments", {}), value.get("call_id")))
        elif kind == "stall":
            steps.append(stall(str(value)))
        elif kind == "error":
            steps.append(provider_error(cast(Any, str(value))))
        else:
            raise CliError(f"bad scripted step {step!r}")
    return steps


def _scripted(env: Mapping[str, str]) -> LlmProvider:
    from lash.testing import ScriptedProvider

    path = env.get("LASH_SCRIPTED_STEPS")
    if not path:
        raise CliError("--provider scripted needs LASH_SCRIPTED_STEPS (a JSON file of steps)")
    try:
        with open(path, encoding="utf-8") as fh:
            raw = json.load(fh)
    except (OSError, ValueError) as err:
        raise CliError(f"cannot load scripted steps from {path}: {err}") from None
    return ScriptedProvider(scripted_steps(raw))
