"""The public names of DESIGN.md §4–§5, used exactly as outside tests use them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import lash
from lash.testing import ScriptedProvider, provider_error, reply, stall, tool_call


@lash.tool
async def lookup(ctx: lash.ToolContext, q: str) -> str:
    """Look something up."""
    assert ctx.session_id and ctx.turn_id and ctx.call_id and ctx.idempotency_key
    return f"result for {q}"


async def test_design_section_4_walkthrough(tmp_path: Path) -> None:
    provider = ScriptedProvider(
        [
            reply("hi there"),
            [tool_call("lookup", {"q": "a"}), tool_call("lookup", {"q": "b"})],
            reply("streamed answer"),
            stall(),
            reply("later done"),
            provider_error("quota", retryable=False, hard_quota=True),
        ]
    )
    core = lash.LashCore.local(
        tmp_path / "lash.db",
        provider=provider,
        model=lash.ModelSpec("gpt-5-mini", context_window=400_000),
        tools=[lookup],
        lease_timings=lash.LeaseTimings(ttl_s=30.0, renew_s=10.0),
    )
    async with core:
        session = await core.session("chat-1").open()
        result = await session.turn("hello").run()
        assert result.turn_id and result.outcome.kind == "finished"
        assert result.outcome.reason == "assistant_message"
        assert result.assistant_text == "hi there"
        u = result.usage
        assert (u.input_tokens, u.cache_read_input_tokens, u.cache_write_input_tokens) == (10, 0, 0)
        assert (u.output_tokens, u.reasoning_output_tokens) == (5, 0)
        assert result.total_usage() == u and len(result.llm_calls) == 1

        async with session.turn(lash.TurnInput.text("go")).stream() as turn:
            kinds = [event.type async for event in turn]
            streamed = await turn.result()
        assert "tool_call_started" in kinds and streamed.assistant_text == "streamed answer"
        call = streamed.tool_calls[0]
        assert (call.name, call.arguments, call.status, call.output) == (
            "lookup",
            {"q": "a"},
            "success",
            "result for a",
        )
        assert call.call_id

        handle = session.turn("long job").start()
        await asyncio.sleep(0.05)
        await handle.cancel()
        cancelled = await handle.result()
        assert cancelled.outcome.kind == "stopped" and cancelled.outcome.reason == "cancelled"

        pending = await session.enqueue("later", source_key="m-42")
        assert [p.id for p in await session.pending_inputs()] == [pending.id]
        results = await session.process_pending()
        assert [r.assistant_text for r in results] == ["later done"]
        dropped = await session.enqueue("never mind", source_key="m-43")
        assert (await session.cancel_pending(dropped.id)).status == "cancelled"

        failed = await session.turn("one more").run()
        issue = failed.issues[0]
        assert failed.outcome.reason == "provider_error"
        assert (issue.kind, issue.retryable, issue.provider_failure_kind) == (
            "llm_provider",
            False,
            "quota",
        )
        assert issue.message and issue.code and issue.terminal_reason

        view = await session.read_view()
        assert view.revision == 5
        assistant = next(m for m in view.messages if m.tool_calls)
        assert assistant.role == "assistant" and assistant.tool_calls[0].name == "lookup"
        tool_msg = next(m for m in view.messages if m.role == "tool")
        assert tool_msg.tool_call_id == assistant.tool_calls[0].id and tool_msg.text

        parked = await session.park()
        session = await core.resume(parked)
        assert (await session.read_view()).revision == 5
        await session.close()
        await core.delete_session("chat-1")
        assert await core.list_sessions() == []


def test_explicit_wiring_and_error_model() -> None:
    core = (
        lash.LashCore.builder()
        .provider(ScriptedProvider([]))
        .model(lash.ModelSpec("gpt-5-mini"))
        .store(lash.stores.MemoryStore())
        .effect_host(lash.InlineEffectHost())
        .tools([lookup])
        .plugins([])
        .lease_timings(lash.LeaseTimings(ttl_s=30.0, renew_s=10.0))
        .build()
    )
    assert isinstance(core, lash.LashCore)
    err = lash.LashRuntimeError(lash.RuntimeErrorCode.STORE_COMMIT_FAILED, "boom")
    assert str(err) == "store_commit_failed: boom"
    assert lash.LashRuntimeError.from_dict(err.to_dict()).is_code("store_commit_failed")
    facet = lash.DurableStoreFacet.SESSION_STORE
    assert str(lash.RuntimeErrorCode.durable_store_required(facet)) == (
        "durable_store_required:session_store"
    )
    assert lash.RuntimeErrorCode.parse("custom_code").value == "custom_code"
    from lash.providers import (
        AnthropicProvider,
        GeminiProvider,
        OpenAIChatProvider,
        OpenAIResponsesProvider,
        RetryPolicy,
        from_env,
    )
    from lash.tools.builtin import workspace_tools

    assert RetryPolicy(max_attempts=4).max_attempts == 4
    assert callable(from_env) and callable(workspace_tools)
    for cls in (OpenAIResponsesProvider, OpenAIChatProvider, AnthropicProvider, GeminiProvider):
        assert isinstance(cls, type)
