"""Built-in file tools: read_file, write, edit, glob, grep, and workspace confinement."""

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lash.tools import Tool, ToolCatalog, ToolError
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


# --- edit (§5.7 "files" rows) -----------------------------------------------------------------


def edit_args(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"oldText": old, "newText": new} for old, new in pairs]


async def edit_fails(
    tools: WorkspaceTools, name: str, content: bytes, edits: list[dict[str, str]]
) -> ToolCallOutput:
    """Run a failing edit and check the file was left byte-for-byte unchanged."""
    target = root_of(tools) / name
    target.write_bytes(content)
    out = await call(tools, "edit", path=name, edits=edits)
    assert out.status == "failure"
    assert target.read_bytes() == content
    return out


async def test_edit_replaces_one_unique_block(tools: WorkspaceTools) -> None:
    target = root_of(tools) / "main.rs"
    target.write_text("fn main() {\n    old();\n}\n")
    out = await call(tools, "edit", path="main.rs", edits=edit_args(("old();", "new();")))
    assert out.status == "success"
    assert target.read_text() == "fn main() {\n    new();\n}\n"
    assert "Successfully replaced 1 block(s)" in out.payload["summary"]
    assert out.payload["replacements"] == 1
    assert out.payload["path"] == "main.rs"
    assert out.payload["details"]["firstChangedLine"] == 2
    assert "-    old();" in out.payload["details"]["patch"]
    assert "+    new();" in out.payload["details"]["diff"]


async def test_edit_replaces_multiple_disjoint_blocks_against_original_file(
    tools: WorkspaceTools,
) -> None:
    target = root_of(tools) / "notes.txt"
    target.write_text("alpha\nbeta\ngamma\n")
    out = await call(
        tools,
        "edit",
        path="notes.txt",
        edits=edit_args(("alpha\n", "ALPHA\n"), ("gamma\n", "GAMMA\n")),
    )
    assert out.status == "success"
    assert target.read_text() == "ALPHA\nbeta\nGAMMA\n"
    assert out.payload["replacements"] == 2


async def test_edit_applies_edits_in_any_order_against_the_original(
    tools: WorkspaceTools,
) -> None:
    target = root_of(tools) / "t.txt"
    target.write_text("alpha\nbeta\nomega\n")
    out = await call(
        tools, "edit", path="t.txt", edits=edit_args(("omega", "OMEGA"), ("alpha", "beta"))
    )
    assert out.status == "success"
    assert target.read_text() == "beta\nbeta\nOMEGA\n"


async def test_edit_rejects_empty_edit_list(tools: WorkspaceTools) -> None:
    out = await edit_fails(tools, "a.txt", b"alpha\n", [])
    assert out.error_code == "invalid_tool_args"
    assert "edits" in str(out.payload)
    with pytest.raises(ToolError, match="edits must contain at least one replacement"):
        apply_edits("alpha\n", [])


async def test_edit_rejects_empty_old_text(tools: WorkspaceTools) -> None:
    out = await edit_fails(tools, "a.txt", b"alpha\n", edit_args(("", "x")))
    assert out.error_code == "invalid_tool_args"
    assert "oldText must not be empty" in str(out.payload)


async def test_edit_rejects_missing_file(tools: WorkspaceTools) -> None:
    out = await call(tools, "edit", path="missing.txt", edits=edit_args(("a", "b")))
    assert out.status == "failure" and out.error_code == "file_not_found"
    assert "Could not edit missing.txt" in str(out.payload)
    assert not (root_of(tools) / "missing.txt").exists()


async def test_edit_rejects_duplicate_matches(tools: WorkspaceTools) -> None:
    out = await edit_fails(tools, "dup.txt", b"same\nsame\n", edit_args(("same\n", "other\n")))
    assert out.error_code == "edit_ambiguous_match"
    assert "Found 2 occurrences" in str(out.payload)


async def test_edit_rejects_overlapping_matches(tools: WorkspaceTools) -> None:
    out = await edit_fails(
        tools, "overlap.txt", b"abcdef\n", edit_args(("abc", "ABC"), ("bcd", "BCD"))
    )
    assert out.error_code == "edit_overlap"
    assert "overlap" in str(out.payload)


async def test_edit_rejects_no_change_replacement(tools: WorkspaceTools) -> None:
    out = await edit_fails(tools, "same.txt", b"alpha\n", edit_args(("alpha", "alpha")))
    assert out.error_code == "edit_no_change"
    assert "No changes" in str(out.payload)


async def test_edit_does_not_match_second_edit_against_first_replacement(
    tools: WorkspaceTools,
) -> None:
    out = await edit_fails(
        tools, "original.txt", b"alpha\n", edit_args(("alpha", "beta"), ("beta", "gamma"))
    )
    assert out.error_code == "edit_no_match"
    assert "Could not find edits[1]" in str(out.payload)


def test_apply_edits_does_not_match_against_earlier_replacements() -> None:
    assert apply_edits("a b", [("a", "b"), ("b", "c")]) == "b c"


async def test_edit_preserves_crlf_and_bom(tools: WorkspaceTools) -> None:
    target = root_of(tools) / "windows.txt"
    target.write_bytes("\ufefffirst\r\nsecond\r\nthird\r\n".encode())
    out = await call(tools, "edit", path="windows.txt", edits=edit_args(("second\n", "SECOND\n")))
    assert out.status == "success"
    assert target.read_bytes() == "\ufefffirst\r\nSECOND\r\nthird\r\n".encode()
    multi = await call(
        tools, "edit", path="windows.txt", edits=edit_args(("SECOND\r\nthird", "2\nthree"))
    )
    assert multi.status == "success"
    assert target.read_bytes() == "\ufefffirst\r\n2\r\nthree\r\n".encode()


async def test_edit_fuzzy_matches_common_unicode_and_trailing_whitespace(
    tools: WorkspaceTools,
) -> None:
    target = root_of(tools) / "unicode.txt"
    target.write_bytes(
        "before\nquote \u201cvalue\u201d uses dash \u2013 and space\u00a0   \nafter\n".encode()
    )
    out = await call(
        tools,
        "edit",
        path="unicode.txt",
        edits=edit_args(('quote "value" uses dash - and space ', "normalized line")),
    )
    assert out.status == "success"
    assert target.read_bytes() == b"before\nnormalized line\nafter\n"


async def test_edit_fuzzy_matching_preserves_untouched_lines(tools: WorkspaceTools) -> None:
    target = root_of(tools) / "preserve.txt"
    target.write_bytes("keep \u201csmart\u201d\nchange \u2013\nkeep \u00a0space  \n".encode())
    out = await call(tools, "edit", path="preserve.txt", edits=edit_args(("change -", "changed")))
    assert out.status == "success"
    # only the matched line is rewritten; the others keep their quotes, NBSP and spaces
    assert target.read_bytes() == "keep \u201csmart\u201d\nchanged\nkeep \u00a0space  \n".encode()


async def test_edit_rejects_unknown_fields_in_an_edit(tools: WorkspaceTools) -> None:
    edits: list[dict[str, Any]] = [{"oldText": "a", "newText": "b", "unexpected": True}]
    out = await edit_fails(tools, "a.txt", b"a\n", edits)
    assert out.error_code == "invalid_tool_args"


# --- glob (§5.7 "files" rows) -----------------------------------------------------------------


def touch(root: Path, *paths: str) -> None:
    for rel in paths:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")


async def test_glob_matches(tools: WorkspaceTools) -> None:
    touch(root_of(tools), "a.rs", "b.rs", "c.txt")
    out = await call(tools, "glob", pattern="*.rs")
    assert out.status == "success"
    assert out.payload == {"paths": ["a.rs", "b.rs"]}


async def test_glob_no_matches(tools: WorkspaceTools) -> None:
    touch(root_of(tools), "a.txt")
    out = await call(tools, "glob", pattern="*.rs")
    assert out.status == "success" and out.payload == {"paths": []}


async def test_glob_nested(tools: WorkspaceTools) -> None:
    touch(root_of(tools), "sub/deep/file.rs")
    out = await call(tools, "glob", pattern="**/*.rs")
    assert out.payload == {"paths": ["sub/deep/file.rs"]}
    below = await call(tools, "glob", pattern="**/*.rs", path="sub")
    assert below.payload == {"paths": ["sub/deep/file.rs"]}


async def test_glob_truncation_marker(tools: WorkspaceTools) -> None:
    touch(root_of(tools), "a.rs", "b.rs", "c.rs")
    out = await call(tools, "glob", pattern="*.rs", limit=2)
    assert out.payload == {
        "paths": ["a.rs", "b.rs"],
        "truncated": {"shown": 2, "total": 3, "omitted": 1},
    }


async def test_glob_limit_none(tools: WorkspaceTools) -> None:
    touch(root_of(tools), "a.rs", "b.rs", "c.rs")
    for unlimited in (None, "none"):
        out = await call(tools, "glob", pattern="*.rs", limit=unlimited)
        assert out.payload == {"paths": ["a.rs", "b.rs", "c.rs"]}  # and no truncation marker
    bad = await call(tools, "glob", pattern="*.rs", limit=0)
    assert bad.error_code == "invalid_tool_args"


async def test_glob_rejects_removed_list_like_options(tools: WorkspaceTools) -> None:
    touch(root_of(tools), "a.rs")
    out = await call(tools, "glob", pattern="*.rs", with_lines=True)
    assert out.status == "failure" and out.error_code == "invalid_tool_args"
    assert get(tools, "glob").spec.parameters["additionalProperties"] is False


async def test_glob_excludes_hidden_by_default(tools: WorkspaceTools) -> None:
    touch(root_of(tools), ".hidden.rs", "shown.rs", ".dir/inner.rs")
    out = await call(tools, "glob", pattern="*.rs")
    assert out.payload == {"paths": ["shown.rs"]}


async def test_glob_respects_repo_gitignore_by_default(tools: WorkspaceTools) -> None:
    root = root_of(tools)
    (root / ".git").mkdir()
    (root / ".gitignore").write_text("ignored.rs\nbuild/\n")
    touch(root, "ignored.rs", "kept.rs", "build/out.rs", "sub/gen.rs", "sub/own.rs")
    (root / "sub" / ".gitignore").write_text("gen.rs\n")
    out = await call(tools, "glob", pattern="*.rs")
    assert out.payload == {"paths": ["kept.rs", "sub/own.rs"]}


async def test_glob_excludes_dot_git_even_when_pattern_matches_it(tools: WorkspaceTools) -> None:
    root = root_of(tools)
    touch(root, ".git/HEAD", ".git/objects/ab/cd", "src/.git/config")
    for pattern in (".git/**", "**/.git/**", "**/HEAD", "*"):
        out = await call(tools, "glob", pattern=pattern)
        assert not any(".git" in p for p in out.payload["paths"]), pattern


async def test_glob_excludes_node_modules_by_default(tools: WorkspaceTools) -> None:
    touch(root_of(tools), "node_modules/pkg/index.js", "app.js", "web/node_modules/x.js")
    out = await call(tools, "glob", pattern="**/*.js")
    assert out.payload == {"paths": ["app.js"]}


async def test_glob_includes_matching_directories(tools: WorkspaceTools) -> None:
    touch(root_of(tools), "sub/deep/file.rs", "sub/notes.md")
    out = await call(tools, "glob", pattern="sub/d*")
    assert out.payload["paths"] == ["sub/deep", "sub/deep/file.rs"]


async def test_glob_path_must_be_a_directory(tools: WorkspaceTools) -> None:
    touch(root_of(tools), "a.rs")
    out = await call(tools, "glob", pattern="*", path="a.rs")
    assert out.error_code == "not_a_directory"
    missing = await call(tools, "glob", pattern="*", path="nope")
    assert missing.error_code == "file_not_found"


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


async def make_tree(root: Path) -> None:
    touch(
        root,
        "a.rs",
        "b.rs",
        "c.txt",
        "sub/deep/file.rs",
        "sub/notes.md",
        ".hidden/x.rs",
        "node_modules/pkg/y.rs",
        "build/out.rs",
        "sub/gen.rs",
    )
    for path in root.rglob("*"):
        if path.is_file():
            path.write_text(f"content of {path.relative_to(root).as_posix()}\n")
    (root / ".git").mkdir()
    (root / ".git" / "z.rs").write_text("")
    (root / ".gitignore").write_text("build/\n")
    (root / "sub" / ".gitignore").write_text("gen.rs\n")


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
