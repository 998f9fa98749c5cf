"""Canonical effect envelopes: the JSON a durable host records and compares on replay.

A journaled effect is recorded with the canonical JSON of the envelope that produced it and
that JSON's SHA-256. A replay rebuilds the envelope from scratch; if it differs, the turn's
code or inputs changed under a live invocation and replaying the old outcome would be a lie,
so the host stops with the first diverging JSON path (content-free: paths, never values).
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from lash.types import to_builtins

__all__ = ["canonical", "canonical_json", "diverging_paths", "envelope_hash"]

_ENCODER = msgspec.json.Encoder(order="sorted")


def canonical(envelope: Any) -> Any:
    """The envelope as plain JSON values (records become objects, tuples lists)."""
    return to_builtins(envelope)


def canonical_json(envelope: Any) -> str:
    """Sorted-key, whitespace-free JSON of the envelope."""
    return _ENCODER.encode(canonical(envelope)).decode()


def envelope_hash(canonical_text: str) -> str:
    """SHA-256 hex of a canonical JSON text."""
    return hashlib.sha256(canonical_text.encode()).hexdigest()


def diverging_paths(recorded: Any, fresh: Any, *, limit: int = 5) -> list[str]:
    """Up to ``limit`` JSON paths (``$.a[0].b``) where two JSON values differ, in key order."""
    out: list[str] = []
    _walk(recorded, fresh, "$", out, limit)
    return out


def _walk(a: Any, b: Any, path: str, out: list[str], limit: int) -> None:
    if len(out) >= limit:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            step = f"{path}.{key}" if _plain(key) else f"{path}[{key!r}]"
            if key not in a or key not in b:
                out.append(step)
            else:
                _walk(a[key], b[key], step, out, limit)
            if len(out) >= limit:
                return
        return
    if isinstance(a, list) and isinstance(b, list):
        for index in range(max(len(a), len(b))):
            step = f"{path}[{index}]"
            if index >= len(a) or index >= len(b):
                out.append(step)
            else:
                _walk(a[index], b[index], step, out, limit)
            if len(out) >= limit:
                return
        return
    if type(a) is not type(b) or a != b:
        out.append(path)


def _plain(key: str) -> bool:
    return key.isidentifier()
