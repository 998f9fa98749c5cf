"""The provider boundary: one protocol every model adapter implements.

An adapter turns an :class:`~lash.types.LlmRequest` into the provider's wire format and its
response stream back into :data:`~lash.types.StreamEvent` values, ending with exactly one
:class:`~lash.types.ResponseCompleted`. Failures raise :class:`ProviderError` carrying a
classified :class:`~lash.types.ProviderFailure`; retries live in :mod:`lash.providers.retry`,
not in adapters.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from lash.types import LlmRequest, ProviderFailure, StreamEvent

__all__ = ["LlmProvider", "ProviderError"]


class ProviderError(Exception):
    """A classified provider failure."""

    def __init__(self, failure: ProviderFailure) -> None:
        self.failure = failure
        super().__init__(f"{failure.kind}: {failure.message}")


@runtime_checkable
class LlmProvider(Protocol):
    """A model adapter."""

    @property
    def kind(self) -> str:
        """Provider kind (``openai``, ``openai-compatible``, ``anthropic``, ``google``, ...)."""
        ...

    def stream(self, request: LlmRequest) -> AsyncIterator[StreamEvent]:
        """Stream one attempt; the last event is ``ResponseCompleted`` or it raises."""
        ...

    async def aclose(self) -> None:
        """Release HTTP clients and other resources."""
        ...
