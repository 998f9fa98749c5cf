"""``read_file`` and ``write``: windowed reads of files and directories, whole-file writes.

``read_file`` on a png/jpeg/gif/webp/bmp image (recognised by its magic bytes, not its name)
stores the bytes as a session attachment through ``ctx.attachments`` and returns a payload
naming it, with the pixel size when the header gives it cheaply. ``attach_as`` (an explicit
MIME type) attaches any file that way instead, so a binary file the model knows how to hand
to a provider natively is not rejected as binary.
"""

from __future__ import annotations

import asyncio
import os
import re
import struct
from typing import Annotated, Any

import msgspec

from lash.tools.base import ToolContext, ToolError
from lash.tools.builtin._workspace import Workspace
from lash.tools.decorator import FunctionTool, tool

__all__ = ["make_read_file", "make_write"]

DEFAULT_LIMIT = 2000
MAX_LINE_CHARS = 2000
MAX_OUTPUT_BYTES = 50 * 1024
BINARY_SNIFF_BYTES = 8192
MAX_IMAGE_BYTES = 20 * 1024 * 1024
"""The largest file stored as an attachment (an image, or any file read with ``attach_as``)."""
_MEDIA_TYPE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
)


def make_read_file(ws: Workspace) -> FunctionTool:
    """The ``read_file`` tool for ``ws``."""

    @tool(name="read_file", retry="safe", max_attempts=2, base_delay_ms=25, max_delay_ms=100)
    async def read_file(
        ctx: ToolContext,
        path: Annotated[str, "File or directory path, relative to the workspace root."],
        offset: Annotated[int, msgspec.Meta(ge=1, description="First line to show (1-based).")] = 1,
        limit: Annotated[int, msgspec.Meta(ge=1, description="Maximum lines to show.")] = (
            DEFAULT_LIMIT
        ),
        attach_as: Annotated[
            str | None,
            "Attach the file natively with this MIME type (e.g. application/pdf) instead of "
            "reading it as text.",
        ] = None,
    ) -> str | dict[str, Any]:
        """Read a known file or directory. Text comes back as `LINE: text` lines; a directory comes back as a sorted, paginated entry list (`name/` for directories); an image (png, jpeg, gif, webp, bmp) is stored as an attachment and comes back as its reference and size. Set `attach_as` to an explicit MIME type to attach any other file natively. Default: 2000 lines. Use `glob` to discover paths."""  # noqa: E501
        media_type = _media_type(attach_as) if attach_as is not None else None
        result = await asyncio.to_thread(_read_sync, ws, path, offset, limit, media_type)
        if isinstance(result, str):
            return result
        return await _attach(ctx, ws.display(ws.resolve(path)), result)

    return read_file


def make_write(ws: Workspace) -> FunctionTool:
    """The ``write`` tool for ``ws``."""

    @tool(name="write")
    def write(
        path: Annotated[str, "File path, relative to the workspace root."],
        content: Annotated[str, "The complete new file content."],
    ) -> dict[str, Any]:
        """Create or overwrite a file with the given content, creating parent directories as needed."""  # noqa: E501
        target = ws.resolve(path)
        if target.is_dir():
            raise ToolError(f"Path is a directory: {path}", code="not_a_file")
        target.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode("utf-8")
        target.write_bytes(data)
        shown = ws.display(target)
        return {
            "summary": f"Wrote {len(data)} bytes to {shown}.",
            "path": shown,
            "bytes": len(data),
        }

    return write


class _Attachment(msgspec.Struct, frozen=True):
    """A file read whole to be stored as an attachment (``size`` only for images)."""

    media_type: str
    data: bytes
    size: tuple[int, int] | None


def _media_type(value: str) -> str:
    text = value.strip().lower()
    if not _MEDIA_TYPE.fullmatch(text):
        raise ToolError(
            f"`attach_as` must be a MIME type like application/pdf, not {value!r}",
            code="invalid_tool_args",
        )
    return text


def _read_sync(
    ws: Workspace, path: str, offset: int, limit: int, attach_as: str | None = None
) -> str | _Attachment:
    """The blocking part of ``read_file`` (run in a worker thread)."""
    target = ws.resolve(path)
    if not target.exists():
        raise ToolError(
            f"Path does not exist: {path}. Use `glob` to locate the correct path.",
            code="file_not_found",
        )
    if target.is_dir():
        entries = sorted(f"{e.name}/" if e.is_dir() else e.name for e in os.scandir(target))
        return _window(iter(entries), offset, limit, "entries", lambda _n, e: e)
    with target.open("rb") as handle:
        head = handle.read(BINARY_SNIFF_BYTES)
    media_type = attach_as or image_media_type(head)
    if media_type is not None:
        size = target.stat().st_size
        if size > MAX_IMAGE_BYTES:
            kind = "File" if attach_as else "Image"
            raise ToolError(
                f"{kind} too large to attach: {path} is {size} bytes "
                f"(limit {MAX_IMAGE_BYTES} bytes).",
                code="file_too_large",
            )
        data = target.read_bytes()
        dims = image_size(media_type, data) if media_type.startswith("image/") else None
        return _Attachment(media_type=media_type, data=data, size=dims)
    if b"\x00" in head:
        raise ToolError(
            f"Binary file detected: {path}. Inspect binary files with `exec_command`.",
            code="binary_file",
        )
    with target.open("rb") as handle:
        lines = (_decode_line(raw) for raw in handle)
        return _window(lines, offset, limit, "lines", lambda n, text: f"{n}: {text}")


async def _attach(ctx: ToolContext, shown: str, image: _Attachment) -> dict[str, Any]:
    noun = "an image" if image.media_type.startswith("image/") else "an attachment"
    if ctx.attachments is None:
        raise ToolError(
            f"{shown} is {noun} ({image.media_type}) and this call has no attachment store "
            "to put it in; attachments can only be read inside a session turn.",
            code="attachments_unavailable",
        )
    ref = await ctx.attachments.put(image.data, image.media_type, label=shown)
    dims = f", {image.size[0]}x{image.size[1]}" if image.size else ""
    stored = "image" if image.media_type.startswith("image/") else "file"
    payload: dict[str, Any] = {
        "summary": (
            f"Stored {stored} {shown} ({image.media_type}, {ref.byte_len} bytes{dims}) "
            f"as attachment {ref.id}."
        ),
        "path": shown,
        "attachment": {
            "id": ref.id,
            "uri": ref.uri,
            "media_type": ref.media_type,
            "byte_len": ref.byte_len,
        },
    }
    if image.size is not None:
        payload["width"], payload["height"] = image.size
    return payload


def image_media_type(head: bytes) -> str | None:
    """The image media type ``head`` (the first bytes of a file) starts with, if any."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(head) >= 12 and head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"BM") and len(head) >= 26:
        return "image/bmp"
    return None


def image_size(media_type: str, data: bytes) -> tuple[int, int] | None:
    """Width and height from the image header, or ``None`` if it is not where expected.

    The bytes must carry ``media_type``'s signature: a mislabelled file has no size.
    """
    if image_media_type(data[:BINARY_SNIFF_BYTES]) != media_type:
        return None
    try:
        if media_type == "image/png":
            if data[12:16] != b"IHDR":
                return None
            return _pair(struct.unpack(">II", data[16:24]))
        if media_type == "image/gif":
            return _pair(struct.unpack("<HH", data[6:10]))
        if media_type == "image/bmp":
            return _bmp_size(data)
        if media_type == "image/webp":
            return _webp_size(data)
        if media_type == "image/jpeg":
            return _jpeg_size(data)
    except struct.error:
        return None
    return None


def _pair(values: tuple[Any, ...]) -> tuple[int, int] | None:
    width, height = int(values[0]), int(values[1])
    return (width, height) if width > 0 and height > 0 else None


def _bmp_size(data: bytes) -> tuple[int, int] | None:
    (header_len,) = struct.unpack("<I", data[14:18])
    if header_len == 12:  # OS/2 BITMAPCOREHEADER
        return _pair(struct.unpack("<HH", data[18:22]))
    width, height = struct.unpack("<ii", data[18:26])
    return _pair((width, abs(height)))  # negative height means top-down rows


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8L" and data[20:21] == b"\x2f":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return _pair((width & 0x3FFF, height & 0x3FFF))
    return None


_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Walk the marker segments up to the first start-of-frame (no pixel decoding)."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # standalone markers carry no length
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return _pair((width, height))
        if marker == 0xDA or length < 2:  # scan data starts: no frame header before it
            return None
        pos += 2 + length
    return None


def _decode_line(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace").rstrip("\n").rstrip("\r")
    if len(text) > MAX_LINE_CHARS:
        return text[:MAX_LINE_CHARS] + f"... [line truncated, {len(text)} chars]"
    return text


def _window(
    items: Any,
    offset: int,
    limit: int,
    kind: str,
    render: Any,
) -> str:
    shown: list[str] = []
    used = 0
    total = 0
    capped = False
    for item in items:
        total += 1
        if total < offset or len(shown) >= limit or capped:
            continue
        line = render(total, item)
        size = len(line.encode()) + (1 if shown else 0)
        if used + size > MAX_OUTPUT_BYTES:
            capped = True
            continue
        shown.append(line)
        used += size
    if total == 0:
        return "(empty directory)" if kind == "entries" else "(empty file)"
    if offset > total:
        raise ToolError(
            f"Offset {offset} is out of range ({total} {kind} in total).",
            code="offset_out_of_range",
        )
    text = "\n".join(shown)
    end = offset + len(shown) - 1
    if capped:
        return (
            f"{text}\n[output capped at 50 KB. Showing {kind} {offset}-{end} of {total}. "
            f"Use offset={end + 1} to continue.]"
        )
    if end < total:
        return (
            f"{text}\n[results truncated: showing {kind} {offset}-{end} of {total}. "
            f"Use offset={end + 1} to continue.]"
        )
    return text
