"""LLM providers: the adapter protocol, the retry ladder, and the adapters.

The adapters are exported lazily so that ``import lash.providers`` never imports a provider
SDK: each SDK is an optional extra, loaded only when its adapter is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lash.providers.base import LlmProvider, ProviderError
from lash.providers.env import ProviderConfigError, from_env
from lash.providers.retry import RetryPolicy, complete_with_retry

if TYPE_CHECKING:
    from lash.providers.anthropic import AnthropicProvider
    from lash.providers.gemini import GeminiProvider
    from lash.providers.openai_chat import ChatCompat, OpenAIChatProvider
    from lash.providers.openai_responses import OpenAIResponsesProvider

__all__ = [
    "AnthropicProvider",
    "ChatCompat",
    "GeminiProvider",
    "LlmProvider",
    "OpenAIChatProvider",
    "OpenAIResponsesProvider",
    "ProviderConfigError",
    "ProviderError",
    "RetryPolicy",
    "complete_with_retry",
    "from_env",
]

_LAZY = {
    "AnthropicProvider": "lash.providers.anthropic",
    "ChatCompat": "lash.providers.openai_chat",
    "GeminiProvider": "lash.providers.gemini",
    "OpenAIChatProvider": "lash.providers.openai_chat",
    "OpenAIResponsesProvider": "lash.providers.openai_responses",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lash.providers' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
