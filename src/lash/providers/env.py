"""Pick a provider from environment variables, for scripts, examples and the CLI.

Explicit beats implicit: ``LASH_BASE_URL`` (any OpenAI-compatible server, with optional
``LASH_API_KEY``) wins; otherwise the first of ``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``,
``GEMINI_API_KEY``, ``OPENROUTER_API_KEY`` that is set chooses the adapter. ``LASH_PROVIDER``
(``openai``, ``anthropic``, ``google``, ``openrouter``, ``openai-compatible``) selects one
explicitly when several keys are present. SDKs are imported only for the adapter chosen.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from lash.providers.base import LlmProvider
from lash.providers.retry import RetryPolicy

__all__ = ["ENV_VARS", "ProviderConfigError", "from_env"]

ENV_VARS = (
    "LASH_BASE_URL",
    "LASH_API_KEY",
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "OPENROUTER_API_KEY",
)
_KEYS = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "google": "GEMINI_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
}


class ProviderConfigError(ValueError):
    """No usable provider configuration in the environment."""


def _missing() -> ProviderConfigError:
    return ProviderConfigError(
        "no LLM provider configured: set one of OPENAI_API_KEY, ANTHROPIC_API_KEY, "
        "GEMINI_API_KEY or OPENROUTER_API_KEY, or LASH_BASE_URL (with optional LASH_API_KEY) "
        "for any OpenAI-compatible server"
    )


def _build(kind: str, env: Mapping[str, str], options: dict[str, Any]) -> LlmProvider:
    if kind == "openai-compatible":
        from lash.providers.openai_chat import OpenAIChatProvider

        return OpenAIChatProvider(
            api_key=env.get("LASH_API_KEY") or None, base_url=env["LASH_BASE_URL"], **options
        )
    key = env.get(_KEYS[kind], "")
    if not key:
        raise ProviderConfigError(f"LASH_PROVIDER={kind} needs {_KEYS[kind]} to be set")
    if kind == "openai":
        from lash.providers.openai_responses import OpenAIResponsesProvider

        return OpenAIResponsesProvider(api_key=key, **options)
    if kind == "anthropic":
        from lash.providers.anthropic import AnthropicProvider

        return AnthropicProvider(api_key=key, **options)
    if kind == "google":
        from lash.providers.gemini import GeminiProvider

        return GeminiProvider(api_key=key, **options)
    from lash.providers.openai_chat import OpenAIChatProvider

    return OpenAIChatProvider.openrouter(api_key=key, **options)


def from_env(
    environ: Mapping[str, str] | None = None, *, retry: RetryPolicy | None = None
) -> LlmProvider:
    """The provider the environment describes; :class:`ProviderConfigError` when none does."""
    env = os.environ if environ is None else environ
    options: dict[str, Any] = {"retry": retry} if retry is not None else {}
    chosen = (env.get("LASH_PROVIDER") or "").strip().lower()
    if chosen:
        if chosen == "openai-compatible" and not env.get("LASH_BASE_URL"):
            raise ProviderConfigError("LASH_PROVIDER=openai-compatible needs LASH_BASE_URL")
        if chosen != "openai-compatible" and chosen not in _KEYS:
            raise ProviderConfigError(
                f"unknown LASH_PROVIDER {chosen!r}; expected one of "
                "openai, anthropic, google, openrouter, openai-compatible"
            )
        return _build(chosen, env, options)
    if env.get("LASH_BASE_URL"):
        return _build("openai-compatible", env, options)
    for kind, var in _KEYS.items():
        if env.get(var):
            return _build(kind, env, options)
    raise _missing()
