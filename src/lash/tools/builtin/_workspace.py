"""The workspace root every built-in tool is confined to, and its ignore-aware walk.

Confinement is checked on the *resolved* path (symlinks followed, ``..`` collapsed), so
``../x``, absolute paths elsewhere and symlinks pointing out are all refused with
``path_outside_workspace``. This confines what the file tools touch; it is not a sandbox for
shell commands, which run with the worker's own permissions.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pathspec

from lash.tools.base import ToolError

__all__ = ["ALWAYS_SKIPPED", "Workspace"]

ALWAYS_SKIPPED = frozenset({".git", "node_modules"})
"""Directory names never walked, whatever the patterns say."""


class Workspace:
    """A resolved root directory plus path helpers that never leave it."""

    __slots__ = ("root",)

    def __init__(self, root: str | os.PathLike[str]) -> None:
        resolved = Path(root).resolve()
        if not resolved.is_dir():
            raise ValueError(f"workspace root {str(root)!r} is not a directory")
        self.root = resolved

    def resolve(self, path: str, *, field: str = "path") -> Path:
        """``path`` (relative to the root, or absolute) resolved inside the workspace."""
        if not path or not path.strip():
            raise ToolError(f"`{field}` must not be empty", code="invalid_tool_args")
        if "\x00" in path:
            raise ToolError(f"`{field}` contains a NUL byte", code="invalid_tool_args")
        candidate = Path(path)
        if not candidate.is_absolute():
            candidate = self.root / candidate
        try:
            resolved = candidate.resolve()
        except (OSError, RuntimeError) as exc:  # symlink loops
            raise ToolError(f"cannot resolve path {path!r}: {exc}", code="invalid_path") from exc
        if resolved != self.root and not resolved.is_relative_to(self.root):
            raise ToolError(
                f"Path {path!r} is outside the workspace; only paths under the workspace root "
                "can be used",
                code="path_outside_workspace",
            )
        return resolved

    def contains(self, path: Path) -> bool:
        """True when ``path`` resolves inside the workspace."""
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError):
            return False
        return resolved == self.root or resolved.is_relative_to(self.root)

    def display(self, path: Path) -> str:
        """``path`` relative to the root, POSIX-style ("." for the root itself)."""
        try:
            rel = path.relative_to(self.root)
        except ValueError:
            return path.as_posix()
        text = rel.as_posix()
        return text if text else "."

    def walk(self, base: Path) -> Iterator[tuple[Path, bool]]:
        """Every visible path under ``base`` as ``(path, is_dir)``, depth-first, sorted.

        Hidden entries, ``.git``, ``node_modules`` and anything a ``.gitignore`` between the
        root and the entry ignores are skipped; symlinked directories are not descended.
        """
        specs = [spec for spec in (self._spec_for(d) for d in self._ancestors(base)) if spec]
        yield from self._walk(base, specs)

    def _walk(
        self, directory: Path, specs: list[tuple[Path, pathspec.GitIgnoreSpec]]
    ) -> Iterator[tuple[Path, bool]]:
        own = self._spec_for(directory)
        if own is not None:
            specs = [*specs, own]
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            name = entry.name
            if name.startswith(".") or name in ALWAYS_SKIPPED:
                continue
            path = Path(entry.path)
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if _ignored(path, is_dir, specs):
                continue
            yield path, is_dir
            if is_dir:
                yield from self._walk(path, specs)

    def _ancestors(self, base: Path) -> list[Path]:
        # Directories from the root down to base's parent; base's own file is read by _walk.
        chain: list[Path] = []
        current = base.parent if base != self.root else None
        while current is not None and (current == self.root or current.is_relative_to(self.root)):
            chain.append(current)
            if current == self.root:
                break
            current = current.parent
        return list(reversed(chain))

    def _spec_for(self, directory: Path) -> tuple[Path, pathspec.GitIgnoreSpec] | None:
        ignore = directory / ".gitignore"
        try:
            lines = ignore.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return None
        return directory, pathspec.GitIgnoreSpec.from_lines(lines)


def _ignored(path: Path, is_dir: bool, specs: list[tuple[Path, pathspec.GitIgnoreSpec]]) -> bool:
    for directory, spec in specs:
        try:
            rel = path.relative_to(directory).as_posix()
        except ValueError:
            continue
        if spec.match_file(rel + "/" if is_dir else rel):
            return True
    return False
