"""Render a JSONL trace as one self-contained HTML file (inline CSS and JS, no network).

Records are interpreted once here into a render model — turns holding their model calls,
tool calls and instant events in order, each with timings, usage, request and response —
which is embedded as JSON in the page for a small renderer script. A line that is not JSON
aborts the load with :class:`TraceFileError` naming the line; a JSON line that is not a
trace record we know is kept raw and shown as such.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["TraceFileError", "build_model", "load_records", "render", "write_html"]

_USAGE_KEYS = (
    "input_tokens",
    "cache_read_input_tokens",
    "cache_write_input_tokens",
    "output_tokens",
    "reasoning_output_tokens",
)


class TraceFileError(ValueError):
    """The trace file cannot be read or is not JSON Lines."""


def load_records(path: str | os.PathLike[str]) -> list[Any]:
    """Every line of ``path`` parsed as JSON (blank lines skipped)."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TraceFileError(f"trace file not found: {source}") from None
    except IsADirectoryError:
        raise TraceFileError(f"trace path is a directory, not a file: {source}") from None
    except UnicodeDecodeError as err:
        raise TraceFileError(f"trace file {source} is not UTF-8 text: {err.reason}") from None
    except OSError as err:
        raise TraceFileError(f"cannot read trace file {source}: {err.strerror or err}") from None
    records: list[Any] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise TraceFileError(
                f"{source} line {number}: invalid JSON ({err.msg} at column {err.colno})"
            ) from None
    return records


def _ms(timestamp: Any) -> float | None:
    if not isinstance(timestamp, str):
        return None
    try:
        return _dt.datetime.fromisoformat(timestamp).timestamp() * 1000.0
    except ValueError:
        return None


def _is_record(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("type"), str)
        and isinstance(value.get("context"), dict)
        and isinstance(value.get("schema_version"), int)
    )


def _usage(value: Any) -> dict[str, int] | None:
    if not isinstance(value, dict):
        return None
    return {k: int(value[k]) for k in _USAGE_KEYS if isinstance(value.get(k), int)}


def _add_usage(total: dict[str, int], usage: dict[str, int] | None) -> None:
    for key, value in (usage or {}).items():
        total[key] = total.get(key, 0) + value


def _text_of(parts: Any) -> str:
    if not isinstance(parts, list):
        return ""
    out = []
    for part in parts:
        if isinstance(part, dict):
            if part.get("kind") == "text" and isinstance(part.get("text"), str):
                out.append(part["text"])
            elif part.get("kind") == "tool_call":
                out.append(f"→ {part.get('name')}({json.dumps(part.get('arguments'))})")
    return " ".join(out)


def _input_text(payload: dict[str, Any]) -> str:
    items = (
        payload.get("input", {}).get("items") if isinstance(payload.get("input"), dict) else None
    )
    if not isinstance(items, list):
        return ""
    return " ".join(
        str(i.get("text")) for i in items if isinstance(i, dict) and i.get("type") == "text"
    )


class _Builder:
    """Folds records, in file order, into turns and their spans."""

    def __init__(self) -> None:
        self.turns: list[dict[str, Any]] = []
        self.turn_by_node: dict[str, dict[str, Any]] = {}
        self.span_by_node: dict[str, dict[str, Any]] = {}
        self.orphans: list[dict[str, Any]] = []
        self.counts = {"records": 0, "llm_calls": 0, "tool_calls": 0, "raw": 0}
        self.usage: dict[str, int] = {}

    def _turn(self, record: dict[str, Any]) -> dict[str, Any] | None:
        ctx = record["context"]
        for key in ("graph_node_id", "parent_graph_node_id"):
            node = ctx.get(key)
            if isinstance(node, str) and node in self.turn_by_node:
                return self.turn_by_node[node]
        return None

    def add(self, line: int, value: Any) -> None:
        self.counts["records"] += 1
        if not _is_record(value):
            self.counts["raw"] += 1
            self.orphans.append({"kind": "raw", "line": line, "title": "unrecognised line"})
            self.orphans[-1]["raw"] = value
            return
        kind = value["type"]
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            handler(line, value)
        else:
            self._event(line, value)

    def _entry(self, line: int, record: dict[str, Any]) -> dict[str, Any]:
        return {"line": line, "type": record["type"], "raw": record}

    def _on_turn_started(self, line: int, record: dict[str, Any]) -> None:
        ctx = record["context"]
        node = ctx.get("graph_node_id") or f"turn:{ctx.get('session_id')}:{ctx.get('turn_id')}"
        turn: dict[str, Any] = {
            "kind": "turn",
            "node": node,
            "session_id": ctx.get("session_id"),
            "turn_id": ctx.get("turn_id"),
            "turn_index": ctx.get("turn_index"),
            "title": f"turn {ctx.get('turn_id')}",
            "summary": _input_text(record.get("payload") or {}),
            "start_ms": _ms(record.get("timestamp")),
            "end_ms": None,
            "status": "running",
            "done_reason": None,
            "failed": False,
            "usage": None,
            "children": [],
            "records": [self._entry(line, record)],
        }
        self.turns.append(turn)
        self.turn_by_node[node] = turn

    def _on_turn_completed(self, line: int, record: dict[str, Any]) -> None:
        turn = self._turn(record)
        if turn is None:
            self._event(line, record)
            return
        payload = record.get("payload") or {}
        turn["end_ms"] = _ms(record.get("timestamp"))
        turn["status"] = str(payload.get("status", "unknown"))
        turn["done_reason"] = payload.get("done_reason")
        turn["usage"] = _usage(payload.get("usage"))
        turn["failed"] = turn["status"] == "stopped" and turn["done_reason"] != "cancelled"
        turn["records"].append(self._entry(line, record))

    def _span(self, line: int, record: dict[str, Any], kind: str) -> dict[str, Any] | None:
        turn = self._turn(record)
        node = record["context"].get("graph_node_id")
        if turn is None or not isinstance(node, str):
            self._event(line, record)
            return None
        span: dict[str, Any] = {
            "kind": kind,
            "node": node,
            "start_ms": _ms(record.get("timestamp")),
            "end_ms": None,
            "status": "running",
            "failed": False,
            "records": [self._entry(line, record)],
        }
        turn["children"].append(span)
        self.span_by_node[node] = span
        return span

    def _close(self, line: int, record: dict[str, Any]) -> dict[str, Any] | None:
        node = record["context"].get("graph_node_id")
        span = self.span_by_node.get(node) if isinstance(node, str) else None
        if span is None:
            self._event(line, record)
            return None
        span["end_ms"] = _ms(record.get("timestamp"))
        span["records"].append(self._entry(line, record))
        return span

    def _on_llm_call_started(self, line: int, record: dict[str, Any]) -> None:
        span = self._span(line, record, "llm")
        if span is None:
            return
        self.counts["llm_calls"] += 1
        request = (record.get("payload") or {}).get("request")
        model = request.get("model") if isinstance(request, dict) else None
        messages = request.get("messages") if isinstance(request, dict) else None
        span["title"] = f"model call · {model or '?'}"
        span["summary"] = f"{len(messages) if isinstance(messages, list) else '?'} messages"
        span["request"] = request
        span["iteration"] = record["context"].get("protocol_iteration")

    def _on_llm_call_completed(self, line: int, record: dict[str, Any]) -> None:
        span = self._close(line, record)
        if span is None:
            return
        payload = record.get("payload") or {}
        response = payload.get("response")
        span["status"] = "completed"
        span["response"] = response
        span["usage"] = _usage(payload.get("usage"))
        _add_usage(self.usage, span["usage"])
        parts = response.get("parts") if isinstance(response, dict) else None
        span["summary"] = _text_of(parts)[:200] or span.get("summary", "")

    def _on_llm_call_failed(self, line: int, record: dict[str, Any]) -> None:
        span = self._close(line, record)
        if span is None:
            return
        error = (record.get("payload") or {}).get("error")
        span["status"] = "failed"
        span["failed"] = True
        span["error"] = error
        detail = error.get("message") if isinstance(error, dict) else error
        span["summary"] = f"failed: {detail}"

    def _on_tool_call_started(self, line: int, record: dict[str, Any]) -> None:
        span = self._span(line, record, "tool")
        if span is None:
            return
        self.counts["tool_calls"] += 1
        payload = record.get("payload") or {}
        span["title"] = f"tool · {payload.get('name')}"
        span["name"] = payload.get("name")
        span["call_id"] = payload.get("call_id")
        span["args"] = payload.get("args")
        span["summary"] = json.dumps(payload.get("args"), ensure_ascii=False)[:200]

    def _on_tool_call_completed(self, line: int, record: dict[str, Any]) -> None:
        span = self._close(line, record)
        if span is None:
            return
        payload = record.get("payload") or {}
        output = payload.get("output")
        status = output.get("status") if isinstance(output, dict) else None
        span["status"] = str(status or "completed")
        span["failed"] = status not in (None, "success")
        span["output"] = output
        span["duration_ms"] = payload.get("duration_ms")
        result = output.get("payload") if isinstance(output, dict) else output
        shown = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
        span["summary"] = f"{span['status']}: {shown}"[:200]

    def _on_token_usage(self, line: int, record: dict[str, Any]) -> None:
        node = record["context"].get("graph_node_id")
        span = self.span_by_node.get(node) if isinstance(node, str) else None
        if span is None:
            self._event(line, record)
            return
        span["records"].append(self._entry(line, record))

    def _event(self, line: int, record: dict[str, Any]) -> None:
        event = {
            "kind": "event",
            "title": record["type"],
            "summary": json.dumps(record.get("payload"), ensure_ascii=False)[:200],
            "start_ms": _ms(record.get("timestamp")),
            "records": [self._entry(line, record)],
        }
        turn = self._turn(record)
        if turn is not None:
            turn["children"].append(event)
        else:
            self.orphans.append({**event, "line": line, "raw": record})


def build_model(records: Iterable[Any], *, title: str = "lash trace") -> dict[str, Any]:
    """The render model: turns with nested calls, orphan records, counts and total usage."""
    builder = _Builder()
    for line, value in enumerate(records, start=1):
        builder.add(line, value)
    for item in builder.turns + [c for t in builder.turns for c in t["children"]]:
        start, end = item.get("start_ms"), item.get("end_ms")
        item["duration_ms"] = item.get("duration_ms") or (
            round(end - start) if isinstance(start, float) and isinstance(end, float) else None
        )
    return {
        "title": title,
        "counts": {**builder.counts, "turns": len(builder.turns)},
        "usage": builder.usage,
        "turns": builder.turns,
        "orphans": builder.orphans,
    }


def render(path: str | os.PathLike[str], *, title: str | None = None) -> str:
    """The HTML page for the trace at ``path`` (raises :class:`TraceFileError`)."""
    records = load_records(path)
    model = build_model(records, title=title or f"lash trace · {Path(path).name}")
    return render_model(model)


def write_html(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    title: str | None = None,
) -> Path:
    """Render ``path`` to ``out`` (default: ``<stem>.html`` beside it) and return the target."""
    source = Path(path)
    target = Path(out) if out is not None else source.with_suffix(".html")
    page = render(source, title=title)
    try:
        target.write_text(page, encoding="utf-8")
    except OSError as err:
        raise TraceFileError(f"cannot write {target}: {err.strerror or err}") from None
    return target


def render_model(model: dict[str, Any]) -> str:
    """Embed a render model in the page template."""
    data = json.dumps(model, ensure_ascii=False, default=str)
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return (
        _PAGE.replace("__TITLE__", html.escape(str(model.get("title", "lash trace"))))
        .replace("__STYLE__", _STYLE)
        .replace("__SCRIPT__", _SCRIPT)
        .replace("__DATA__", data)
    )


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>__STYLE__</style>
</head>
<body>
<header><h1>__TITLE__</h1><div id="summary"></div></header>
<main id="app"><noscript>This trace viewer needs JavaScript; the trace is embedded as JSON in
the element #lash-trace-data.</noscript></main>
<script type="application/json" id="lash-trace-data">__DATA__</script>
<script>__SCRIPT__</script>
</body>
</html>
"""

_STYLE = """
:root { --bg:#fafafa; --fg:#1d1d1f; --muted:#6b6b70; --line:#e2e2e6; --llm:#3b6fd8;
  --tool:#2f9e6a; --event:#9a7b2f; --bad:#c93c3c; --raw:#7a4fb0; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, Segoe UI, sans-serif;
  background:var(--bg); color:var(--fg); }
header { padding:16px 24px; border-bottom:1px solid var(--line); background:#fff; }
h1 { font-size:18px; margin:0 0 6px; }
#summary { color:var(--muted); }
main { padding:16px 24px; }
.turn { background:#fff; border:1px solid var(--line); border-radius:8px; margin:0 0 16px; }
.turn > summary, .span > summary { cursor:pointer; list-style:none; padding:10px 14px;
  display:flex; gap:10px; align-items:baseline; flex-wrap:wrap; }
.turn > summary { font-weight:600; border-bottom:1px solid var(--line); }
.children { padding:6px 10px 10px; }
.span { border-left:4px solid var(--event); margin:6px 0; background:#fcfcfd;
  border-radius:4px; }
.span.llm { border-color:var(--llm); } .span.tool { border-color:var(--tool); margin-left:24px; }
.span.raw { border-color:var(--raw); } .failed { border-color:var(--bad) !important; }
.pill { font-size:12px; padding:1px 7px; border-radius:10px; background:#eef0f4;
  color:var(--muted); font-weight:400; }
.pill.bad { background:#fbe5e5; color:var(--bad); }
.summary { color:var(--muted); font-weight:400; overflow:hidden; text-overflow:ellipsis;
  white-space:nowrap; max-width:60ch; }
.bar { position:relative; height:6px; background:#eef0f4; border-radius:3px; width:160px; }
.bar > i { position:absolute; top:0; bottom:0; background:var(--llm); border-radius:3px;
  min-width:2px; }
.tool .bar > i { background:var(--tool); }
.body { padding:0 14px 12px; }
.body h3 { font-size:12px; text-transform:uppercase; color:var(--muted); margin:10px 0 4px; }
pre { margin:0; padding:8px 10px; background:#f3f3f6; border-radius:4px; overflow:auto;
  max-height:420px; font:12px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace;
  white-space:pre-wrap; word-break:break-word; }
.msg { margin:4px 0; } .msg b { display:inline-block; min-width:72px; color:var(--muted); }
"""

_SCRIPT = """
(function () {
  "use strict";
  var model = JSON.parse(document.getElementById("lash-trace-data").textContent);
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function pill(text, bad) { return el("span", bad ? "pill bad" : "pill", text); }
  function usageText(u) {
    if (!u) return null;
    var s = "in " + (u.input_tokens || 0) + " · out " + (u.output_tokens || 0);
    if (u.cache_read_input_tokens) s += " · cache read " + u.cache_read_input_tokens;
    if (u.cache_write_input_tokens) s += " · cache write " + u.cache_write_input_tokens;
    if (u.reasoning_output_tokens) s += " · reasoning " + u.reasoning_output_tokens;
    return s;
  }
  function section(parent, title, value) {
    if (value === undefined || value === null) return;
    parent.appendChild(el("h3", null, title));
    parent.appendChild(el("pre", null,
      typeof value === "string" ? value : JSON.stringify(value, null, 2)));
  }
  function messages(parent, request) {
    if (!request || !Array.isArray(request.messages)) return;
    parent.appendChild(el("h3", null, "messages"));
    request.messages.forEach(function (m) {
      var row = el("div", "msg");
      row.appendChild(el("b", null, m.role));
      var parts = (m.parts || []).map(function (p) {
        if (p.kind === "text") return p.text;
        if (p.kind === "tool_call") return "→ " + p.name + "(" + JSON.stringify(p.arguments) + ")";
        if (p.kind === "tool_result") return "← " + p.name + ": " +
          (typeof p.content === "string" ? p.content : JSON.stringify(p.content));
        return "[" + p.kind + "]";
      });
      row.appendChild(document.createTextNode(parts.join(" ")));
      parent.appendChild(row);
    });
  }
  function bar(turn, item) {
    var wrap = el("span", "bar");
    var total = (turn.end_ms || item.end_ms || item.start_ms) - turn.start_ms;
    if (!(total > 0) || item.start_ms == null) return wrap;
    var i = el("i");
    var left = Math.max(0, (item.start_ms - turn.start_ms) / total * 100);
    var width = item.end_ms ? Math.max(1, (item.end_ms - item.start_ms) / total * 100) : 1;
    i.style.left = left + "%"; i.style.width = Math.min(width, 100 - left) + "%";
    wrap.appendChild(i);
    return wrap;
  }
  function span(turn, item) {
    var d = el("details", "span " + item.kind + (item.failed ? " failed" : ""));
    d.setAttribute("data-kind", item.kind);
    if (item.node) d.setAttribute("data-node", item.node);
    var s = el("summary");
    s.appendChild(el("span", "title", item.title));
    if (item.status) s.appendChild(pill(item.status, item.failed));
    if (item.duration_ms != null) s.appendChild(pill(item.duration_ms + " ms"));
    var u = usageText(item.usage); if (u) s.appendChild(pill(u));
    if (turn) s.appendChild(bar(turn, item));
    s.appendChild(el("span", "summary", item.summary || ""));
    d.appendChild(s);
    var body = el("div", "body");
    if (item.kind === "llm") {
      messages(body, item.request);
      section(body, "request", item.request);
      section(body, "response", item.response);
      section(body, "error", item.error);
    } else if (item.kind === "tool") {
      section(body, "arguments", item.args);
      section(body, "output", item.output);
    }
    section(body, "records", (item.records || []).map(function (r) { return r.raw; }));
    if (item.kind === "raw") section(body, "line " + item.line, item.raw);
    d.appendChild(body);
    return d;
  }
  var c = model.counts, summary = document.getElementById("summary");
  summary.textContent = c.turns + " turns · " + c.llm_calls + " model calls · " +
    c.tool_calls + " tool calls · " + c.records + " records" +
    (c.raw ? " · " + c.raw + " unrecognised" : "") +
    (usageText(model.usage) ? " · tokens " + usageText(model.usage) : "");
  var app = document.getElementById("app");
  app.textContent = "";
  model.turns.forEach(function (turn) {
    var d = el("details", "turn" + (turn.failed ? " failed" : ""));
    d.open = true;
    d.setAttribute("data-kind", "turn");
    d.setAttribute("data-node", turn.node);
    var s = el("summary");
    s.appendChild(el("span", "title", turn.title + " · session " + turn.session_id));
    s.appendChild(pill(turn.status + (turn.done_reason ? " (" + turn.done_reason + ")" : ""),
      turn.failed));
    if (turn.duration_ms != null) s.appendChild(pill(turn.duration_ms + " ms"));
    var u = usageText(turn.usage); if (u) s.appendChild(pill(u));
    s.appendChild(el("span", "summary", turn.summary));
    d.appendChild(s);
    var kids = el("div", "children");
    turn.children.forEach(function (child) { kids.appendChild(span(turn, child)); });
    d.appendChild(kids);
    app.appendChild(d);
  });
  if (model.orphans.length) {
    var box = el("details", "turn");
    box.open = true;
    box.setAttribute("data-kind", "orphans");
    box.appendChild(el("summary", null, "records outside any turn (" + model.orphans.length + ")"));
    var kids = el("div", "children");
    model.orphans.forEach(function (item) { kids.appendChild(span(null, item)); });
    box.appendChild(kids);
    app.appendChild(box);
  }
  if (!model.turns.length && !model.orphans.length) app.appendChild(el("p", null, "empty trace"));
  document.body.setAttribute("data-rendered", "true");
})();
"""
