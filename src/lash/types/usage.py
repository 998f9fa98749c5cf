"""Token usage buckets and the per-session usage ledger.

Buckets follow lash's glossary: ``input_tokens`` is *uncached* input, the two cache buckets
are the rest of the input, and ``reasoning_output_tokens`` is a subset of ``output_tokens``
(so the total never adds reasoning twice).
"""

from __future__ import annotations

from collections.abc import Iterable

from lash.types._base import Record

__all__ = ["TokenLedgerEntry", "TokenUsage", "UsageReport", "UsageRow", "merge_ledger"]


class TokenUsage(Record, frozen=True, kw_only=True):
    """Token counts of one call, one turn, or a sum of them."""

    input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_write_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_output_tokens: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            input_tokens=self.input_tokens + other.input_tokens,
            cache_read_input_tokens=self.cache_read_input_tokens + other.cache_read_input_tokens,
            cache_write_input_tokens=self.cache_write_input_tokens + other.cache_write_input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            reasoning_output_tokens=self.reasoning_output_tokens + other.reasoning_output_tokens,
        )

    def __sub__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            input_tokens=self.input_tokens - other.input_tokens,
            cache_read_input_tokens=self.cache_read_input_tokens - other.cache_read_input_tokens,
            cache_write_input_tokens=self.cache_write_input_tokens - other.cache_write_input_tokens,
            output_tokens=self.output_tokens - other.output_tokens,
            reasoning_output_tokens=self.reasoning_output_tokens - other.reasoning_output_tokens,
        )

    def input_total(self) -> int:
        """Uncached plus cached input."""
        return self.input_tokens + self.cache_read_input_tokens + self.cache_write_input_tokens

    def total(self) -> int:
        """All input plus output (reasoning is already inside output)."""
        return self.input_total() + self.output_tokens

    def is_zero(self) -> bool:
        """True when every bucket is zero."""
        return self == _ZERO


_ZERO = TokenUsage()


class TokenLedgerEntry(Record, frozen=True, kw_only=True):
    """Usage attributed to a ``(source, model)`` pair (``source`` e.g. ``turn``, ``subagent``)."""

    source: str
    model: str
    usage: TokenUsage


def merge_ledger(entries: Iterable[TokenLedgerEntry]) -> list[TokenLedgerEntry]:
    """Merge entries by ``(source, model)`` in first-seen order, dropping zero usage."""
    merged: dict[tuple[str, str], TokenUsage] = {}
    for entry in entries:
        key = (entry.source, entry.model)
        merged[key] = merged.get(key, _ZERO) + entry.usage
    return [
        TokenLedgerEntry(source=s, model=m, usage=u)
        for (s, m), u in merged.items()
        if not u.is_zero()
    ]


class UsageRow(Record, frozen=True, kw_only=True):
    """One grouped row of a :class:`UsageReport`."""

    source: str | None = None
    model: str | None = None
    usage: TokenUsage
    total_tokens: int


class UsageReport(Record, frozen=True, kw_only=True):
    """A session's usage grouped by source, model and both."""

    entry_count: int
    usage: TokenUsage
    total_tokens: int
    by_source: tuple[UsageRow, ...] = ()
    by_model: tuple[UsageRow, ...] = ()
    by_source_model: tuple[UsageRow, ...] = ()

    @classmethod
    def from_entries(cls, entries: Iterable[TokenLedgerEntry]) -> UsageReport:
        """Group ledger entries into a report."""
        rows = merge_ledger(entries)
        total = sum((r.usage for r in rows), _ZERO)
        by_source: dict[str, TokenUsage] = {}
        by_model: dict[str, TokenUsage] = {}
        for r in rows:
            by_source[r.source] = by_source.get(r.source, _ZERO) + r.usage
            by_model[r.model] = by_model.get(r.model, _ZERO) + r.usage
        return cls(
            entry_count=len(rows),
            usage=total,
            total_tokens=total.total(),
            by_source=tuple(
                UsageRow(source=s, usage=u, total_tokens=u.total()) for s, u in by_source.items()
            ),
            by_model=tuple(
                UsageRow(model=m, usage=u, total_tokens=u.total()) for m, u in by_model.items()
            ),
            by_source_model=tuple(
                UsageRow(
                    source=r.source, model=r.model, usage=r.usage, total_tokens=r.usage.total()
                )
                for r in rows
            ),
        )
