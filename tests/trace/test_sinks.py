"""JsonlTraceSink round-trips records; TeeTraceSink fans out appends and flushes."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import msgspec
import pytest

from lash.trace import JsonlTraceSink, TeeTraceSink, TraceContext, TraceRecord

from .helpers import traced_run


class ListSink:
    def __init__(self) -> None:
        self.records: list[TraceRecord] = []
        self.flushes = 0

    def append(self, record: TraceRecord) -> None:
        self.records.append(record)

    def flush(self) -> None:
        self.flushes += 1


class Broken:
    def append(self, record: TraceRecord) -> None:
        raise OSError("broken sink")

    def flush(self) -> None:
        raise OSError("broken sink")


def _record(n: int) -> TraceRecord:
    return TraceRecord(
        type="custom",
        context=TraceContext(session_id="s", graph_node_id=f"n{n}"),
        payload={"name": "x", "payload": {"n": n, "text": "ünïcode\nline"}},
    )


def test_jsonl_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "trace.jsonl"
    sink = JsonlTraceSink(path)
    records = [_record(n) for n in range(3)]
    for r in records:
        sink.append(r)
    sink.flush()
    lines = path.read_bytes().splitlines()
    assert len(lines) == 3
    decoded = [msgspec.json.decode(line, type=TraceRecord) for line in lines]
    assert decoded == records
    first = json.loads(lines[0])
    assert set(first) == {"schema_version", "id", "timestamp", "context", "type", "payload"}
    assert first["schema_version"] == 2


def test_jsonl_appends_across_sink_instances_and_threads(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    sinks = [JsonlTraceSink(path), JsonlTraceSink(path)]

    def write(sink: JsonlTraceSink, base: int) -> None:
        for n in range(50):
            sink.append(_record(base + n))

    threads = [threading.Thread(target=write, args=(s, i * 100)) for i, s in enumerate(sinks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = path.read_bytes().splitlines()
    ns = sorted(json.loads(line)["payload"]["payload"]["n"] for line in lines)
    assert ns == list(range(50)) + list(range(100, 150))


def test_flush_before_any_record_is_harmless(tmp_path: Path) -> None:
    sink = JsonlTraceSink(tmp_path / "none.jsonl")
    sink.flush()
    assert not (tmp_path / "none.jsonl").exists()


async def test_runtime_writes_a_jsonl_trace(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    await traced_run(JsonlTraceSink(path))
    lines = path.read_bytes().splitlines()
    records = [msgspec.json.decode(line, type=TraceRecord) for line in lines]
    kinds = [r.type for r in records]
    assert kinds[0] == "turn_started" and kinds[-1] == "turn_completed"
    assert kinds.count("llm_call_started") == 2 and kinds.count("tool_call_completed") == 1


def test_tee_fans_out_appends_and_flushes() -> None:
    a, b = ListSink(), ListSink()
    tee = TeeTraceSink([a, b])
    tee.append(_record(1))
    tee.flush()
    assert len(a.records) == 1 and a.records == b.records
    assert a.flushes == b.flushes == 1


def test_tee_reaches_every_sink_even_when_one_fails() -> None:
    good = ListSink()
    tee = TeeTraceSink([Broken(), good])
    with pytest.raises(OSError, match="broken sink"):
        tee.append(_record(1))
    with pytest.raises(OSError, match="broken sink"):
        tee.flush()
    assert len(good.records) == 1 and good.flushes == 1


async def test_tee_under_the_runtime(tmp_path: Path) -> None:
    mem = ListSink()
    path = tmp_path / "t.jsonl"
    await traced_run(TeeTraceSink([mem, JsonlTraceSink(path)]))
    lines = path.read_bytes().splitlines()
    assert [r.id for r in mem.records] == [json.loads(line)["id"] for line in lines]
    assert mem.flushes == 1
