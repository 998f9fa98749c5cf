"""Server-sent-event framing at the byte level.

Lines are split on raw bytes and decoded only once complete, so a multibyte UTF-8 code point
split across network chunks is never corrupted. ``data:`` lines of one event are joined with
``\\n``; ``event:``, ``id:`` and comment lines are ignored (every dialect we speak repeats the
event type inside the JSON); a blank line ends the event. At end of input a pending event is
flushed, so a stream cut mid-event still hands over what it delivered.
"""

from __future__ import annotations

__all__ = ["SseDecodeError", "SseDecoder"]


class SseDecodeError(ValueError):
    """A line was not valid UTF-8; ``raw`` keeps the offending bytes for diagnosis."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        super().__init__(f"invalid UTF-8 in event stream line: {raw[:200]!r}")


class SseDecoder:
    """Incremental decoder: feed bytes, get the ``data`` payloads of completed events."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._data: list[str] = []
        self._pending_cr = False

    def feed(self, chunk: bytes) -> list[str]:
        """Consume ``chunk``; return the payloads of events it completed."""
        out: list[str] = []
        buf = self._buffer
        if self._pending_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._pending_cr = False
        buf.extend(chunk)
        start = 0
        while True:
            idx_n = buf.find(b"\n", start)
            idx_r = buf.find(b"\r", start)
            if idx_n < 0 and idx_r < 0:
                break
            if idx_r >= 0 and (idx_n < 0 or idx_r < idx_n):
                end, nxt = idx_r, idx_r + 1
                if nxt < len(buf) and buf[nxt] == 0x0A:
                    nxt += 1
                elif nxt == len(buf):
                    self._pending_cr = True
            else:
                end, nxt = idx_n, idx_n + 1
            self._line(bytes(buf[start:end]), out)
            start = nxt
        del buf[:start]
        return out

    def flush(self) -> list[str]:
        """End of input: process an unterminated last line and emit a pending event."""
        out: list[str] = []
        if self._buffer:
            line = bytes(self._buffer)
            self._buffer.clear()
            self._line(line, out)
        if self._data:
            out.append("\n".join(self._data))
            self._data = []
        return out

    @property
    def pending(self) -> str:
        """Undecoded trailing bytes and unfinished event data (for diagnostics)."""
        parts = [*self._data]
        if self._buffer:
            parts.append(bytes(self._buffer).decode("utf-8", errors="replace"))
        return "\n".join(parts)

    def _line(self, raw: bytes, out: list[str]) -> None:
        if not raw:
            if self._data:
                out.append("\n".join(self._data))
                self._data = []
            return
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise SseDecodeError(raw) from err
        if line.startswith(":"):
            return
        field, sep, value = line.partition(":")
        if not sep:
            return
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
