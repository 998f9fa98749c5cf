"""Built-in file tools: read_file, write, edit, glob, grep, and workspace confinement."""

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lash.tools import Tool, ToolCatalog
from lash.tools.builtin import WorkspaceTools, workspace_tools
from lash.tools.builtin.edit import apply_edits
from lash.tools.builtin.search import glob_to_regex
from lash.types import ToolCallOutput

from .helpers import run


@pytest.fixture
async def tools(tmp_path: Path) -> AsyncIterator[WorkspaceTools]:
    root = tmp_path / "ws"
    root.mkdir()
    (tmp_path / "secret.txt").write_text("top secret\n")
    async with workspace_tools(root, shell=False) as ws:
        yield ws


def root_of(tools: WorkspaceTools) -> Path:
    return tools.workspace.root


def get(tools: WorkspaceTools, name: str) -> Tool:
    t = tools.get(name)
    assert t is not None
    return t


async def call(tools: WorkspaceTools, name: str, **arguments: Any) -> ToolCallOutput:
    return await run(get(tools, name), arguments)


def test_tool_names_and_catalog_integration(tmp_path: Path) -> None:
    full = workspace_tools(tmp_path)
    names = [t.spec.name for t in full]
    assert names == [
        "read_file",
        "glob",
        "grep",
        "edit",
        "write",
        "exec_command",
        "start_command",
        "write_stdin",
    ]
    assert ToolCatalog([full]).names() == tuple(names)
    assert len(workspace_tools(tmp_path, shell=False)) == 5


def test_workspace_root_must_be_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        workspace_tools(tmp_path / "missing")


# --- confinement -----------------------------------------------------------------------------

FILE_TOOLS: list[tuple[str, dict[str, Any]]] = [
    ("read_file", {}),
    ("write", {"content": "pwned"}),
    ("edit", {"edits": [{"oldText": "top", "newText": "pwned"}]}),
    ("glob", {"pattern": "*"}),
    ("grep", {"pattern": "secret"}),
]


@pytest.mark.parametrize(("name", "extra"), FILE_TOOLS)
@pytest.mark.parametrize("style", ["dotdot", "absolute", "symlink"])
async def test_every_file_tool_refuses_paths_outside_the_workspace(
    tools: WorkspaceTools, tmp_path: Path, name: str, extra: dict[str, Any], style: str
) -> None:
    root = root_of(tools)
    if name in ("glob", "grep"):
        outside = tmp_path / "outside_dir"
        outside.mkdir()
        (outside / "secret.txt").write_text("top secret\n")
        rel_target = "../outside_dir"
    else:
        outside = tmp_path / "secret.txt"
        rel_target = "../secret.txt"
    if style == "dotdot":
        path = rel_target
    elif style == "absolute":
        path = str(outside)
    else:
        (root / "link").symlink_to(outside)
        path = "link"
    before = (tmp_path / "secret.txt").read_text()
    out = await call(tools, name, path=path, **extra)
    assert out.status == "failure"
    assert out.error_code == "path_outside_workspace"
    assert (tmp_path / "secret.txt").read_text() == before


async def test_symlinked_parent_directory_is_refused_for_writes(
    tools: WorkspaceTools, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (root_of(tools) / "out").symlink_to(outside)
    out = await call(tools, "write", path="out/new.txt", content="x")
    assert out.error_code == "path_outside_workspace"
    assert not (outside / "new.txt").exists()


async def test_dangling_symlink_pointing_out_is_refused(
    tools: WorkspaceTools, tmp_path: Path
) -> None:
    (root_of(tools) / "dangle").symlink_to(tmp_path / "not-yet")
    out = await call(tools, "write", path="dangle", content="x")
    assert out.error_code == "path_outside_workspace"
    assert not (tmp_path / "not-yet").exists()


async def test_absolute_and_dotted_paths_inside_the_workspace_are_allowed(
    tools: WorkspaceTools,
) -> None:
    root = root_of(tools)
    (root / "a.txt").write_text("hi\n")
    out = await call(tools, "read_file", path=str(root / "sub" / ".." / "a.txt"))
    assert out.status == "success" and out.payload == "1: hi"


async def test_grep_does_not_follow_symlinked_files_out(
    tools: WorkspaceTools, tmp_path: Path
) -> None:
    (root_of(tools) / "leak.txt").symlink_to(tmp_path / "secret.txt")
    out = await call(tools, "grep", pattern="secret")
    assert out.status == "success" and out.payload == {"matches": []}


# --- read_file --------------------------------------------------------------------------------


async def test_read_file_numbers_lines(tools: WorkspaceTools) -> None:
    (root_of(tools) / "f.txt").write_text("alpha\nbeta\r\ngamma")
    out = await call(tools, "read_file", path="f.txt")
    assert out.payload == "1: alpha\n2: beta\n3: gamma"


async def test_read_file_offset_and_limit(tools: WorkspaceTools) -> None:
    (root_of(tools) / "f.txt").write_text("".join(f"l{i}\n" for i in range(1, 11)))
    out = await call(tools, "read_file", path="f.txt", offset=3, limit=2)
    assert out.payload == "3: l3\n4: l4\n[Showing lines 3-4 of 10. Use offset=5 to continue.]"
    past = await call(tools, "read_file", path="f.txt", offset=11)
    assert past.error_code == "offset_out_of_range"
    bad = await call(tools, "read_file", path="f.txt", offset=0)
    assert bad.error_code == "invalid_tool_args"


async def test_read_file_caps_large_output_by_bytes(tools: WorkspaceTools) -> None:
    (root_of(tools) / "big.txt").write_text(("y" * 1000 + "\n") * 200)
    out = await call(tools, "read_file", path="big.txt")
    assert isinstance(out.payload, str)
    assert len(out.payload.encode()) < 52 * 1024
    assert "output capped at 50 KB" in out.payload
    assert "Use offset=" in out.payload


async def test_read_file_truncates_very_long_lines(tools: WorkspaceTools) -> None:
    (root_of(tools) / "wide.txt").write_text("é" * 5000)
    out = await call(tools, "read_file", path="wide.txt")
    assert out.payload.startswith("1: " + "é" * 2000 + "... [line truncated")


async def test_read_file_missing_and_binary(tools: WorkspaceTools) -> None:
    missing = await call(tools, "read_file", path="nope.txt")
    assert missing.error_code == "file_not_found" and "glob" in missing.payload
    (root_of(tools) / "b.bin").write_bytes(b"\x89PNG\x00\x01\x02")
    binary = await call(tools, "read_file", path="b.bin")
    assert binary.error_code == "binary_file"


async def test_read_file_lists_directories_paginated(tools: WorkspaceTools) -> None:
    root = root_of(tools)
    (root / "dir").mkdir()
    for name in ("b.txt", "a.txt", "c.txt"):
        (root / "dir" / name).write_text("")
    (root / "dir" / "sub").mkdir()
    out = await call(tools, "read_file", path="dir")
    assert out.payload == "a.txt\nb.txt\nc.txt\nsub/"
    page = await call(tools, "read_file", path="dir", offset=2, limit=2)
    assert page.payload == "b.txt\nc.txt\n[Showing entries 2-3 of 4. Use offset=4 to continue.]"


async def test_read_file_is_safe_to_retry(tools: WorkspaceTools) -> None:
    assert get(tools, "read_file").retry_policy == "safe"
    assert get(tools, "write").retry_policy == "never"


# --- write ------------------------------------------------------------------------------------


async def test_write_creates_parents_and_overwrites(tools: WorkspaceTools) -> None:
    out = await call(tools, "write", path="a/b/c.txt", content="héllo")
    assert out.status == "success"
    assert out.payload == {
        "summary": "Wrote 6 bytes to a/b/c.txt.",
        "path": "a/b/c.txt",
        "bytes": 6,
    }
    target = root_of(tools) / "a" / "b" / "c.txt"
    assert target.read_text() == "héllo"
    await call(tools, "write", path="a/b/c.txt", content="new")
    assert target.read_text() == "new"


async def test_write_refuses_directories(tools: WorkspaceTools) -> None:
    (root_of(tools) / "d").mkdir()
    out = await call(tools, "write", path="d", content="x")
    assert out.error_code == "not_a_file"


# --- edit -------------------------------------------------------------------------------------


def edit_args(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"oldText": old, "newText": new} for old, new in pairs]


async def test_edit_replaces_one_unique_block(tools: WorkspaceTools) -> None:
    target = root_of(tools) / "m.py"
    target.write_text("def f():\n    return 1\n\ndef g():\n    return 2\n")
    out = await call(tools, "edit", path="m.py", edits=edit_args(("return 2", "return 3")))
    assert out.status == "success"
    assert target.read_text() == "def f():\n    return 1\n\ndef g():\n    return 3\n"
    assert out.payload["replacements"] == 1
    assert out.payload["details"]["firstChangedLine"] == 5
    assert "-    return 2" in out.payload["details"]["patch"]
    assert "+    return 3" in out.payload["details"]["diff"]


async def test_edit_applies_several_edits_against_the_original(tools: WorkspaceTools) -> None:
    target = root_of(tools) / "t.txt"
    target.write_text("alpha\nbeta\nomega\n")
    out = await call(
        tools, "edit", path="t.txt", edits=edit_args(("alpha", "beta"), ("omega", "OMEGA"))
    )
    assert out.status == "success"
    assert target.read_text() == "beta\nbeta\nOMEGA\n"


@pytest.mark.parametrize(
    ("edits", "code"),
    [
        (edit_args(("same", "x")), "edit_ambiguous_match"),
        (edit_args(("absent", "x")), "edit_no_match"),
        (edit_args(("one same", "x"), ("same two", "y")), "edit_overlap"),
        (edit_args(("one", "one")), "edit_no_change"),
        (edit_args(("", "x")), "invalid_tool_args"),
        ([], "invalid_tool_args"),
    ],
)
async def test_edit_failures_leave_the_file_unchanged(
    tools: WorkspaceTools, edits: list[dict[str, str]], code: str
) -> None:
    target = root_of(tools) / "t.txt"
    original = b"one same two same\n"
    target.write_bytes(original)
    out = await call(tools, "edit", path="t.txt", edits=edits)
    assert out.status == "failure" and out.error_code == code
    assert target.read_bytes() == original


async def test_edit_missing_file(tools: WorkspaceTools) -> None:
    out = await call(tools, "edit", path="nope.txt", edits=edit_args(("a", "b")))
    assert out.error_code == "file_not_found"


async def test_edit_preserves_crlf_and_bom(tools: WorkspaceTools) -> None:
    target = root_of(tools) / "w.txt"
    target.write_bytes("\ufeffline one\r\nline two\r\nline three\r\n".encode())
    out = await call(
        tools, "edit", path="w.txt", edits=edit_args(("line two\nline three", "2\nthree"))
    )
    assert out.status == "success"
    assert target.read_bytes() == "\ufeffline one\r\n2\r\nthree\r\n".encode()


async def test_edit_fuzzy_matches_unicode_and_trailing_whitespace(tools: WorkspaceTools) -> None:
    target = root_of(tools) / "u.txt"
    target.write_bytes("keep  \nsay \u201chello\u201d \u2014 ok   \nkeep\u00a0too  \n".encode())
    out = await call(
        tools, "edit", path="u.txt", edits=edit_args(('say "hello" - ok', "say goodbye"))
    )
    assert out.status == "success"
    # Untouched lines keep their original bytes (trailing spaces, NBSP).
    assert target.read_bytes() == "keep  \nsay goodbye\nkeep\u00a0too  \n".encode()


def test_apply_edits_does_not_match_against_earlier_replacements() -> None:
    assert apply_edits("a b", [("a", "b"), ("b", "c")]) == "b c"


# --- glob ------------------------------------------------------------------------------------


async def make_tree(root: Path) -> None:
    for rel in (
        "a.rs",
        "b.rs",
        "c.txt",
        "sub/deep/file.rs",
        "sub/notes.md",
        ".hidden/x.rs",
        "node_modules/pkg/y.rs",
        "build/out.rs",
        "sub/gen.rs",
    ):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"content of {rel}\n")
    (root / ".git").mkdir()
    (root / ".git" / "z.rs").write_text("")
    (root / ".gitignore").write_text("build/\n")
    (root / "sub" / ".gitignore").write_text("gen.rs\n")


async def test_glob_matches_sorted_and_skips_ignored(tools: WorkspaceTools) -> None:
    await make_tree(root_of(tools))
    out = await call(tools, "glob", pattern="*.rs")
    assert out.payload == {"paths": ["a.rs", "b.rs", "sub/deep/file.rs"]}
    dotted = await call(tools, "glob", pattern="./*.rs")
    assert dotted.payload == out.payload
    nested = await call(tools, "glob", pattern="**/*.rs", path="sub")
    assert nested.payload == {"paths": ["sub/deep/file.rs"]}


async def test_glob_includes_matching_directories(tools: WorkspaceTools) -> None:
    await make_tree(root_of(tools))
    out = await call(tools, "glob", pattern="sub/d*")
    assert out.payload["paths"] == ["sub/deep", "sub/deep/file.rs"]


async def test_glob_no_matches_and_truncation(tools: WorkspaceTools) -> None:
    await make_tree(root_of(tools))
    none = await call(tools, "glob", pattern="*.py")
    assert none.payload == {"paths": []}
    capped = await call(tools, "glob", pattern="*.rs", limit=2)
    assert capped.payload == {
        "paths": ["a.rs", "b.rs"],
        "truncated": {"shown": 2, "total": 3, "omitted": 1},
    }
    for unlimited in (None, "none"):
        out = await call(tools, "glob", pattern="*.rs", limit=unlimited)
        assert len(out.payload["paths"]) == 3 and "truncated" not in out.payload
    bad = await call(tools, "glob", pattern="*.rs", limit=0)
    assert bad.error_code == "invalid_tool_args"


async def test_glob_path_must_be_a_directory(tools: WorkspaceTools) -> None:
    await make_tree(root_of(tools))
    out = await call(tools, "glob", pattern="*", path="a.rs")
    assert out.error_code == "not_a_directory"


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("*.rs", "a.rs", True),
        ("*.rs", "x/y/a.rs", True),
        ("**/*.rs", "a.rs", True),
        ("src/**", "src/a/b", True),
        ("src/**", "srcx/a", False),
        ("?.rs", "a.rs", True),
        ("[ab].rs", "b.rs", True),
        ("[!ab].rs", "b.rs", False),
        ("*.{rs,md}", "n.md", True),
        ("*.{rs,md}", "n.txt", False),
        ("a+b.txt", "a+b.txt", True),
    ],
)
def test_glob_pattern_semantics(pattern: str, path: str, expected: bool) -> None:
    assert bool(glob_to_regex(pattern).match(path)) is expected


# --- grep ------------------------------------------------------------------------------------


async def test_grep_finds_lines_with_include_and_limit(tools: WorkspaceTools) -> None:
    await make_tree(root_of(tools))
    out = await call(tools, "grep", pattern=r"content of .*\.rs")
    assert out.payload == {
        "matches": [
            {"path": "a.rs", "line": 1, "text": "content of a.rs"},
            {"path": "b.rs", "line": 1, "text": "content of b.rs"},
            {"path": "sub/deep/file.rs", "line": 1, "text": "content of sub/deep/file.rs"},
        ]
    }
    md = await call(tools, "grep", pattern="CONTENT", include="*.md", ignore_case=True)
    assert [m["path"] for m in md.payload["matches"]] == ["sub/notes.md"]
    capped = await call(tools, "grep", pattern="content", limit=1)
    assert len(capped.payload["matches"]) == 1 and capped.payload["truncated"] is True


async def test_grep_single_file_and_bad_regex(tools: WorkspaceTools) -> None:
    root = root_of(tools)
    (root / "f.txt").write_text("x\nfoo bar\nfoo\n")
    out = await call(tools, "grep", pattern="^foo", path="f.txt")
    assert [m["line"] for m in out.payload["matches"]] == [2, 3]
    bad = await call(tools, "grep", pattern="(")
    assert bad.error_code == "invalid_tool_args"


async def test_grep_skips_binary_files(tools: WorkspaceTools) -> None:
    (root_of(tools) / "b.bin").write_bytes(b"needle\x00\x01")
    out = await call(tools, "grep", pattern="needle")
    assert out.payload == {"matches": []}


def test_no_stray_files_in_workspace(tmp_path: Path) -> None:
    workspace_tools(tmp_path)
    assert os.listdir(tmp_path) == []
