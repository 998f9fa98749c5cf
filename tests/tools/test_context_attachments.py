"""``ToolContext.attachments`` and ``ToolContext.trace`` through real turns, and image reads."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

import lash
from lash.errors import StoreError
from lash.stores.memory import MemoryAttachmentStore
from lash.testing import ScriptedProvider, reply, tool_call
from lash.tools.base import ToolAttachments, ToolContext
from lash.tools.builtin import workspace_tools
from lash.tools.builtin.files import image_media_type, image_size
from lash.trace import TraceRecord

from .helpers import make_ctx, run


class ListSink:
    def __init__(self) -> None:
        self.records: list[TraceRecord] = []

    def append(self, record: TraceRecord) -> None:
        self.records.append(record)

    def flush(self) -> None:
        pass


def png(width: int, height: int) -> bytes:
    """A valid, tiny greyscale PNG."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x7f" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _core(
    steps: list[Any], tools: Any, *, sink: ListSink | None = None
) -> tuple[lash.LashCore, ScriptedProvider]:
    provider = ScriptedProvider(steps)
    builder = (
        lash.LashCore.builder()
        .provider(provider)
        .model(lash.ModelSpec("m"))
        .store(lash.stores.MemoryStore())
        .effect_host(lash.InlineEffectHost())
        .tools(tools)
    )
    if sink is not None:
        builder = builder.trace(sink)
    return builder.build(), provider


def _committed(store: Any, session_id: str, attachment_id: str) -> bool:
    # The memory store keeps its manifest private; the commit stamp is what "owned by the
    # turn" means, so read it directly rather than trusting holds_ref (true for intents too).
    assert isinstance(store, MemoryAttachmentStore)
    ref = store._refs[(session_id, attachment_id)]
    return ref.committed_at_ms is not None


async def test_tool_stores_an_attachment_the_session_reads_back_after_commit() -> None:
    seen: list[ToolContext] = []

    @lash.tool
    async def chart(ctx: lash.ToolContext, title: str) -> dict[str, Any]:
        """Render a chart."""
        seen.append(ctx)
        assert ctx.attachments is not None
        ref = await ctx.attachments.put(f"chart:{title}".encode(), "image/png", label=title)
        assert await ctx.attachments.get(ref.id) == f"chart:{title}".encode()
        return {"id": ref.id, "bytes": ref.byte_len}

    core, _ = _core([tool_call("chart", {"title": "q3"}, "c1"), reply("done")], [chart])
    session = await core.session("s1").open()
    result = await session.turn("plot").turn_id("t1").run()

    output = result.tool_calls[0].output
    store = core.config.attachments
    assert await store.get("s1", output["id"]) == b"chart:q3"
    assert output["bytes"] == len(b"chart:q3")
    assert _committed(store, "s1", output["id"])
    assert seen[0].attachments is not None
    assert (seen[0].attachments.session_id, seen[0].attachments.turn_id) == ("s1", "t1")
    with pytest.raises(StoreError):  # bound to its session: others cannot read it
        await store.get("other", output["id"])


async def test_tool_attachment_reads_are_limited_to_the_session() -> None:
    store = MemoryAttachmentStore()
    foreign = await store.put("s2", b"secret", "text/plain")
    mine = ToolAttachments(store, "s1", turn_id="t1")
    with pytest.raises(StoreError):
        await mine.get(foreign.id)


async def test_read_file_of_a_png_produces_an_attachment(tmp_path: Path) -> None:
    data = png(3, 2)
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "logo.bin").write_bytes(data)  # sniffed by magic bytes, not name
    tools = workspace_tools(tmp_path, shell=False)
    core, provider = _core(
        [tool_call("read_file", {"path": "img/logo.bin"}, "r1"), reply("seen")], tools
    )
    session = await core.session("s1").open()
    result = await session.turn("look").run()

    output = result.tool_calls[0].output
    attachment = output["attachment"]
    assert attachment["media_type"] == "image/png"
    assert attachment["byte_len"] == len(data)
    assert (output["width"], output["height"]) == (3, 2)
    assert attachment["uri"] == f"lash-attachment://sha256/{attachment['id']}"
    assert "3x2" in output["summary"]
    assert await core.config.attachments.get("s1", attachment["id"]) == data
    assert _committed(core.config.attachments, "s1", attachment["id"])
    # the model saw the payload that names the attachment
    assert attachment["id"] in str(provider.requests[1].messages[-1])


async def test_read_file_image_without_attachments_is_a_tool_error(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(png(1, 1))
    out = await run(workspace_tools(tmp_path, shell=False).get("read_file"), {"path": "a.png"})  # type: ignore[arg-type]
    assert out.status == "failure"
    assert out.error_code == "attachments_unavailable"


async def test_read_file_other_binary_stays_an_error(tmp_path: Path) -> None:
    (tmp_path / "blob.dat").write_bytes(b"\x00\x01\x02binary")
    store = MemoryAttachmentStore()
    ctx = ToolContext(
        session_id="s1",
        turn_id="t1",
        call_id="c1",
        tool_name="read_file",
        replay_key="k",
        attachments=ToolAttachments(store, "s1", turn_id="t1"),
    )
    tool = workspace_tools(tmp_path, shell=False).get("read_file")
    assert tool is not None
    out = await tool.invoke(ctx, {"path": "blob.dat"})
    assert (out.status, out.error_code) == ("failure", "binary_file")
    assert await store.list_blobs() == []
    text = await tool.invoke(ctx, {"path": "."})
    assert text.ok and "blob.dat" in text.payload


async def test_trace_sink_sees_records_a_tool_writes() -> None:
    sink = ListSink()

    @lash.tool
    async def probe(ctx: lash.ToolContext, depth: int) -> str:
        """Probe something and trace it."""
        assert ctx.trace is not None
        ctx.trace.emit("probe.measured", {"depth": depth, "call": ctx.call_id})
        return "ok"

    core, _ = _core([tool_call("probe", {"depth": 7}, "p1"), reply("done")], [probe], sink=sink)
    session = await core.session("s1").open()
    await session.turn("probe it").turn_id("t9").run()

    mine = [r for r in sink.records if r.type == "probe.measured"]
    assert len(mine) == 1
    assert mine[0].payload == {"depth": 7, "call": "p1"}
    assert (mine[0].context.session_id, mine[0].context.turn_id) == ("s1", "t9")
    kinds = [r.type for r in sink.records]
    assert kinds.index("turn_started") < kinds.index("probe.measured")


def test_context_outside_a_turn_has_no_capabilities() -> None:
    ctx = make_ctx()
    assert ctx.attachments is None
    assert ctx.trace is None


def _jpeg(width: int, height: int) -> bytes:
    app0 = (
        b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + b"\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    )
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof + b"\xff\xda\x00\x08"


def _webp(chunk: bytes, body: bytes) -> bytes:
    inner = b"WEBP" + chunk + struct.pack("<I", len(body)) + body
    return b"RIFF" + struct.pack("<I", len(inner)) + inner


@pytest.mark.parametrize(
    ("data", "media_type", "size"),
    [
        (png(640, 480), "image/png", (640, 480)),
        (b"GIF89a" + struct.pack("<HH", 33, 17) + b"\x00" * 8, "image/gif", (33, 17)),
        (_jpeg(1024, 768), "image/jpeg", (1024, 768)),
        (
            b"BM" + b"\x00" * 12 + struct.pack("<Iii", 40, 12, -5) + b"\x00" * 16,
            "image/bmp",
            (12, 5),
        ),
        (
            _webp(b"VP8X", b"\x00" * 4 + (99).to_bytes(3, "little") + (49).to_bytes(3, "little")),
            "image/webp",
            (100, 50),
        ),
        (
            _webp(b"VP8L", b"\x2f" + ((20 - 1) | ((10 - 1) << 14)).to_bytes(4, "little")),
            "image/webp",
            (20, 10),
        ),
        (
            _webp(b"VP8 ", b"\x00\x00\x00\x9d\x01\x2a" + struct.pack("<HH", 64, 32)),
            "image/webp",
            (64, 32),
        ),
    ],
)
def test_image_sniffing_and_header_dimensions(
    data: bytes, media_type: str, size: tuple[int, int]
) -> None:
    assert image_media_type(data[:8192]) == media_type
    assert image_size(media_type, data) == size


def test_truncated_image_headers_give_no_size_rather_than_failing() -> None:
    assert image_size("image/png", b"\x89PNG\r\n\x1a\n") is None
    assert image_size("image/jpeg", b"\xff\xd8\xff\xe0\x00") is None
    assert image_media_type(b"plain text") is None
