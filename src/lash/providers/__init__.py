"""LLM providers: the adapter protocol, the retry ladder, and the adapters."""

from lash.providers.base import LlmProvider, ProviderError
from lash.providers.retry import RetryPolicy, complete_with_retry

__all__ = ["LlmProvider", "ProviderError", "RetryPolicy", "complete_with_retry"]
