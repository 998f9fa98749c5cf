"""Fan one trace stream out to several sinks."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from lash.trace.base import TraceRecord, TraceSink

__all__ = ["TeeTraceSink"]

log = logging.getLogger(__name__)


class TeeTraceSink:
    """Hands every record to each sink in order; one failing sink does not starve the rest."""

    __slots__ = ("sinks",)

    def __init__(self, sinks: Iterable[TraceSink]) -> None:
        self.sinks: tuple[TraceSink, ...] = tuple(sinks)

    def append(self, record: TraceRecord) -> None:
        """Append to every sink."""
        self._each("append", record)

    def flush(self) -> None:
        """Flush every sink."""
        self._each("flush")

    def _each(self, method: str, *args: TraceRecord) -> None:
        first: Exception | None = None
        for sink in self.sinks:
            try:
                getattr(sink, method)(*args)
            except Exception as err:
                log.exception("trace sink %r failed in %s", sink, method)
                first = first or err
        if first is not None:
            raise first
