"""Shared base for the serialisable data model and its canonical JSON encoding.

Every record is a frozen, keyword-only ``msgspec.Struct``: cheap to build, hashable when its
fields are, and encoded by one codec everywhere (storage, hashing, the wire).
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

__all__ = [
    "JsonValue",
    "Record",
    "canonical_json",
    "decode",
    "encode",
    "stable_hash",
    "to_builtins",
]

JsonValue = Any
"""A JSON-compatible value (dict/list/str/int/float/bool/None)."""


class Record(msgspec.Struct, frozen=True, kw_only=True):
    """Base class for immutable, serialisable records.

    Defaults are always encoded: msgspec's ``omit_defaults`` compares some values by identity,
    so a record decoded from storage could encode differently from an equal one built in
    memory, and canonical hashes must not depend on where a value came from.
    """


_encoder = msgspec.json.Encoder()
_canonical_encoder = msgspec.json.Encoder(order="sorted")


def encode(value: Any) -> bytes:
    """Encode a record (or builtins) as compact JSON bytes."""
    return _encoder.encode(value)


def decode(data: bytes | str, type: Any = Any) -> Any:
    """Decode JSON bytes into ``type`` (validating)."""
    return msgspec.json.decode(data, type=type)


def to_builtins(value: Any) -> Any:
    """Convert a record into plain JSON-compatible builtins."""
    return msgspec.to_builtins(value)


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON: sorted keys, no whitespace."""
    return _canonical_encoder.encode(to_builtins(value))


def stable_hash(value: Any) -> str:
    """SHA-256 hex of :func:`canonical_json`."""
    return hashlib.sha256(canonical_json(value)).hexdigest()
