"""Names shared by several first-party plugins."""

from __future__ import annotations

__all__ = ["CHILD_MARK", "READ_ONLY_TOOLS", "is_subagent_session"]

READ_ONLY_TOOLS = frozenset({"read_file", "glob", "grep"})
"""Workspace tools that cannot change anything (plan mode, ``explore`` subagents)."""

CHILD_MARK = ":child:"
"""Subagent sessions are ``{parent}:child:{call_id}``."""


def is_subagent_session(session_id: str) -> bool:
    """Whether ``session_id`` names a subagent's child session."""
    return CHILD_MARK in session_id
