"""Outcomes as journal data: encode a value of a known type, decode it back on replay.

``msgspec`` converts records and containers, but refuses a union of untagged records such as
``LlmResponse | ProviderFailure``; those members are recorded as ``{"$member": i, "value": v}``
(``i`` the member's position in the union), so the replayed value has the original type.
"""

from __future__ import annotations

import types
import typing
from typing import Any

import msgspec

from lash.types import to_builtins

__all__ = ["dump_outcome", "load_outcome"]


def dump_outcome(value: Any, tp: Any) -> Any:
    """``value`` (of type ``tp``; ``None`` means "any JSON") as plain JSON values."""
    if tp is None or tp is Any:
        return to_builtins(value)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if _is_union(tp):
        for index, member in enumerate(args):
            if _matches(value, member):
                return {"$member": index, "value": dump_outcome(value, member)}
        raise TypeError(f"{type(value).__name__} is not a member of {tp}")
    if origin is tuple and args and args[-1] is not Ellipsis:
        if not isinstance(value, tuple) or len(value) != len(args):
            raise TypeError(f"expected a {len(args)}-tuple for {tp}")
        return [dump_outcome(v, t) for v, t in zip(value, args, strict=True)]
    return to_builtins(value)


def load_outcome(data: Any, tp: Any) -> Any:
    """The inverse of :func:`dump_outcome`.

    A type with a ``from_recorded(data)`` classmethod decodes itself: that is how an outcome
    record that grew new fields still reads what older versions recorded.
    """
    if tp is None or tp is Any:
        return data
    from_recorded = getattr(tp, "from_recorded", None)
    if callable(from_recorded):
        return from_recorded(data)
    args = typing.get_args(tp)
    if _is_union(tp):
        member = args[int(data["$member"])]
        return load_outcome(data["value"], member)
    if typing.get_origin(tp) is tuple and args and args[-1] is not Ellipsis:
        return tuple(load_outcome(v, t) for v, t in zip(data, args, strict=True))
    return msgspec.convert(data, type=tp)


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _matches(value: Any, member: Any) -> bool:
    if member is type(None):
        return value is None
    if member is Any:
        return True
    origin = typing.get_origin(member) or member
    return isinstance(origin, type) and isinstance(value, origin)
