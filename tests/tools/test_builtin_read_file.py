"""``read_file`` (processes-tools §3.9, §5.7 "files" read rows): text windows, directories,
images and explicit ``attach_as`` attachments, and the image header parsers.
"""

import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lash.stores.memory import MemoryAttachmentStore
from lash.tools import Tool, ToolContext
from lash.tools.base import ToolAttachments
from lash.tools.builtin import WorkspaceTools, workspace_tools
from lash.tools.builtin.files import MAX_LINE_CHARS, image_media_type, image_size
from lash.types import ToolCallOutput

from .helpers import run


@pytest.fixture
async def tools(tmp_path: Path) -> AsyncIterator[WorkspaceTools]:
    async with workspace_tools(tmp_path, shell=False) as ws:
        yield ws


def read_tool(tools: WorkspaceTools) -> Tool:
    t = tools.get("read_file")
    assert t is not None
    return t


async def read(tools: WorkspaceTools, **arguments: Any) -> ToolCallOutput:
    return await run(read_tool(tools), arguments)


def attachment_ctx(store: MemoryAttachmentStore) -> ToolContext:
    return ToolContext(
        session_id="s1",
        turn_id="t1",
        call_id="c1",
        tool_name="read_file",
        replay_key="k",
        attachments=ToolAttachments(store, "s1", turn_id="t1"),
    )


def png_header(width: int, height: int) -> bytes:
    return (
        b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">II", width, height)
    )


# --- §5.7 read rows ---------------------------------------------------------------------------


async def test_read_file(tools: WorkspaceTools) -> None:
    (tools.workspace.root / "test.txt").write_text("line1\nline2\r\nline3")
    out = await read(tools, path="test.txt")
    assert out.status == "success"
    assert out.payload == "1: line1\n2: line2\n3: line3"
    assert "|" not in out.payload


async def test_read_with_offset_and_limit(tools: WorkspaceTools) -> None:
    (tools.workspace.root / "test.txt").write_text("line1\nline2\nline3\nline4\nline5")
    out = await read(tools, path="test.txt", offset=2, limit=2)
    assert out.payload == (
        "2: line2\n3: line3\n[results truncated: showing lines 2-3 of 5. Use offset=4 to continue.]"
    )
    past = await read(tools, path="test.txt", offset=6)
    assert past.error_code == "offset_out_of_range"
    for bad in ({"offset": 0}, {"limit": 0}):
        invalid = await read(tools, path="test.txt", **bad)
        assert invalid.error_code == "invalid_tool_args"


async def test_read_caps_large_output_by_bytes(tools: WorkspaceTools) -> None:
    text = "\n".join(f"{i}: {'x' * 400}" for i in range(200))
    (tools.workspace.root / "test.txt").write_text(text)
    out = await read(tools, path="test.txt", limit=200)
    assert isinstance(out.payload, str)
    body, marker = out.payload.rsplit("\n", 1)
    assert len(body.encode()) <= 50 * 1024
    assert marker.startswith("[output capped at 50 KB. Showing lines 1-")
    shown = len(body.split("\n"))
    assert f"Use offset={shown + 1} to continue." in marker


async def test_read_nonexistent(tools: WorkspaceTools) -> None:
    out = await read(tools, path="nonexistent/path/to/file.txt")
    assert out.status == "failure" and out.error_code == "file_not_found"
    assert "glob" in str(out.payload)


async def test_read_directory_returns_paginated_listing_without_ls_hint(
    tools: WorkspaceTools,
) -> None:
    root = tools.workspace.root
    (root / "dir" / "sub").mkdir(parents=True)
    for name in ("c.txt", "a.txt", "b.txt"):
        (root / "dir" / name).write_text("")
    page = await read(tools, path="dir", limit=2)
    assert page.payload == (
        "a.txt\nb.txt\n[results truncated: showing entries 1-2 of 4. Use offset=3 to continue.]"
    )
    assert "ls" not in page.payload
    rest = await read(tools, path="dir", offset=3)
    assert rest.payload == "c.txt\nsub/"
    (root / "empty").mkdir()
    assert (await read(tools, path="empty")).payload == "(empty directory)"


def test_read_file_contract_guides_directory_discovery_to_glob(tmp_path: Path) -> None:
    description = workspace_tools(tmp_path, shell=False).get("read_file").spec.description  # type: ignore[union-attr]
    assert "`glob`" in description and "`ls`" not in description


async def test_explicit_attach_as_enables_native_binary_attachment(tmp_path: Path) -> None:
    (tmp_path / "sample.bin").write_bytes(bytes([0, 1, 2, 3]))
    store = MemoryAttachmentStore()
    tool = read_tool(workspace_tools(tmp_path, shell=False))
    ctx = attachment_ctx(store)

    default = await tool.invoke(ctx, {"path": "sample.bin"})
    assert (default.status, default.error_code) == ("failure", "binary_file")

    attached = await tool.invoke(
        ctx, {"path": "sample.bin", "attach_as": "application/octet-stream"}
    )
    assert attached.status == "success"
    ref = attached.payload["attachment"]
    assert ref["media_type"] == "application/octet-stream" and ref["byte_len"] == 4
    assert await store.get("s1", ref["id"]) == bytes([0, 1, 2, 3])
    assert "width" not in attached.payload

    bad = await tool.invoke(ctx, {"path": "sample.bin", "attach_as": "not a mime"})
    assert bad.error_code == "invalid_tool_args"
    (tmp_path / "notes.txt").write_text("plain")
    pdf = await tool.invoke(ctx, {"path": "notes.txt", "attach_as": "Application/PDF"})
    assert pdf.payload["attachment"]["media_type"] == "application/pdf"
    listing = await tool.invoke(ctx, {"path": ".", "attach_as": "application/pdf"})
    assert isinstance(listing.payload, str) and "notes.txt" in listing.payload  # dirs list


async def test_attach_as_without_an_attachment_store_is_a_tool_error(
    tools: WorkspaceTools,
) -> None:
    (tools.workspace.root / "doc.pdf").write_bytes(b"%PDF-1.4\n")
    out = await read(tools, path="doc.pdf", attach_as="application/pdf")
    assert out.error_code == "attachments_unavailable"


async def test_read_image_returns_attachment_value(tmp_path: Path) -> None:
    data = png_header(1, 1)
    (tmp_path / "tiny.png").write_bytes(data)
    store = MemoryAttachmentStore()
    out = await read_tool(workspace_tools(tmp_path, shell=False)).invoke(
        attachment_ctx(store), {"path": "tiny.png"}
    )
    assert out.status == "success"
    ref = out.payload["attachment"]
    assert ref["byte_len"] == len(data) and ref["media_type"] == "image/png"
    assert (out.payload["width"], out.payload["height"]) == (1, 1)
    assert await store.get("s1", ref["id"]) == data


def test_png_dimensions_valid() -> None:
    assert image_size("image/png", png_header(640, 480)) == (640, 480)


def test_png_dimensions_truncated() -> None:
    assert image_size("image/png", b"\x89PNG") is None


def test_png_dimensions_wrong_sig() -> None:
    assert image_size("image/png", bytes(24)) is None


def test_jpeg_dimensions_valid() -> None:
    data = (
        b"\xff\xd8" + b"\xff\xc0" + b"\x00\x11" + b"\x08" + struct.pack(">HH", 480, 640) + b"\x00"
    )
    assert image_media_type(data) == "image/jpeg"
    assert image_size("image/jpeg", data) == (640, 480)


def test_jpeg_dimensions_truncated() -> None:
    assert image_size("image/jpeg", b"\xff\xd8\xff\xc0") is None


def test_gif87a_dimensions() -> None:
    data = b"GIF87a" + struct.pack("<HH", 320, 200)
    assert image_media_type(data) == "image/gif"
    assert image_size("image/gif", data) == (320, 200)


def test_gif89a_dimensions() -> None:
    assert image_size("image/gif", b"GIF89a" + struct.pack("<HH", 100, 50)) == (100, 50)


def test_gif_bad_signature() -> None:
    data = b"NOT_GIF___"
    assert image_media_type(data) is None
    assert image_size("image/gif", data) is None


def test_image_mime() -> None:
    # sniffed from the magic bytes (a renamed or extensionless image is still an image)
    assert image_media_type(png_header(1, 1)) == "image/png"
    assert image_media_type(b"\xff\xd8\xff\xe0") == "image/jpeg"
    assert image_media_type(b"GIF87a") == image_media_type(b"GIF89a") == "image/gif"
    assert image_media_type(b"RIFF\x00\x00\x00\x00WEBP") == "image/webp"
    assert image_media_type(b"BM" + bytes(24)) == "image/bmp"
    assert image_media_type(b"plain text file") is None
    assert image_media_type(b"") is None


async def test_truncate_line_does_not_split_multibyte_char(tools: WorkspaceTools) -> None:
    # a 3-byte character sits right at the cut: it is kept whole or dropped, never split
    line = "a" * (MAX_LINE_CHARS - 1) + "€" + "b" * 50
    (tools.workspace.root / "wide.txt").write_text(line)
    out = await read(tools, path="wide.txt")
    kept = out.payload.removeprefix("1: ")
    assert kept.startswith("a" * (MAX_LINE_CHARS - 1) + "€... [line truncated")
    assert "\ufffd" not in kept and "b" not in kept.split("...")[0]


# --- our own read behaviour -------------------------------------------------------------------


async def test_read_file_truncates_very_long_lines(tools: WorkspaceTools) -> None:
    (tools.workspace.root / "wide.txt").write_text("é" * 5000)
    out = await read(tools, path="wide.txt")
    assert out.payload.startswith("1: " + "é" * 2000 + "... [line truncated, 5000 chars]")


async def test_read_file_rejects_binary_and_reads_empty_files(tools: WorkspaceTools) -> None:
    (tools.workspace.root / "b.bin").write_bytes(b"\x7fELF\x00\x01\x02")
    binary = await read(tools, path="b.bin")
    assert binary.error_code == "binary_file"
    (tools.workspace.root / "empty.txt").write_text("")
    assert (await read(tools, path="empty.txt")).payload == "(empty file)"


async def test_read_file_is_safe_to_retry(tools: WorkspaceTools) -> None:
    assert read_tool(tools).retry_policy == "safe"
