"""Context plugins: rolling history (prompt view only), compaction into a new frame,
observational memory beside them (its own rows are in ``test_observational_memory.py``), and
llm_query's usage."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import pytest

from lash.plugins import (
    Compaction,
    LlmQuery,
    LlmTools,
    ObservationalMemory,
    ObservationalMemoryConfig,
    RollingHistory,
    model_summariser,
)
from lash.plugins.history import estimate_tokens, render_transcript
from lash.stores import MemoryStore
from lash.testing import ScriptedProvider, provider_error, reply, tool_call
from lash.types import Message, ModelSpec, TokenUsage


def texts(messages: Sequence[Message]) -> list[str]:
    return [m.text for m in messages]


async def test_rolling_history_trims_only_the_prompt(make_core: Any) -> None:
    words = "word " * 60  # ~75 tokens per message
    provider = ScriptedProvider([reply(f"answer {i} {words}") for i in range(6)])
    history = functools.partial(RollingHistory, max_context_tokens=400, keep_last=2)
    core = make_core(provider, plugins=[history])
    session = await core.session("s").open()
    for i in range(6):
        await session.turn(f"question {i} {words}").run()

    first, last = provider.requests[0], provider.requests[-1]
    assert len(first.messages) == 1  # nothing to trim yet
    assert last.messages[0].role == "system"
    assert "earlier messages" in last.messages[0].text
    kept = last.messages[1:]
    assert kept[0].role == "user"  # the window starts cleanly
    assert kept[-1].text.startswith("question 5")
    assert sum(estimate_tokens(m) for m in kept[:-1]) <= 400
    view = await session.read_view()
    assert len(view.messages) == 12  # durable history is untouched


async def test_rolling_history_never_starts_with_an_orphaned_tool_result(make_core: Any) -> None:
    big = "y" * 2000
    provider = ScriptedProvider(
        [
            tool_call("nope", {"pad": big}, "c1"),
            reply("after tool " + big),
            reply("second"),
        ]
    )
    # keep_last=2 would keep [tool result, assistant]: the window moves past the orphan
    history = functools.partial(RollingHistory, max_context_tokens=50, keep_last=2)
    core = make_core(provider, plugins=[history])
    session = await core.session("s").open()
    await session.turn("first " + big).run()
    await session.turn("next").run()
    prompt = provider.requests[-1].messages
    assert [m.role for m in prompt] == ["system", "assistant", "user"]
    assert "3 earlier messages" in prompt[0].text
    assert prompt[1].text.startswith("after tool")


def test_rolling_history_options_are_checked() -> None:
    with pytest.raises(ValueError):
        RollingHistory(max_context_tokens=0)
    with pytest.raises(ValueError):
        RollingHistory(keep_last=0)


async def test_compaction_seeds_a_new_frame_with_the_model_summary(make_core: Any) -> None:
    summariser_model = ScriptedProvider([reply("The user asked about cats; we answered.")])
    summarise = model_summariser(summariser_model, ModelSpec("small-model"))
    provider = ScriptedProvider([reply("cats are great"), reply("sure")])
    store = MemoryStore()
    core = make_core(provider, plugins=[functools.partial(Compaction, summarise)], store=store)
    session = await core.session("s").open()
    await session.turn("tell me about cats").run()
    frame = await session.compact()

    assert frame is not None and ":frame:compaction:" in frame
    asked = summariser_model.requests[0]
    assert asked.model == "small-model" and asked.system and "Summarise" in asked.system
    assert "user: tell me about cats" in asked.messages[0].text
    assert "assistant: cats are great" in asked.messages[0].text
    await session.turn("and dogs?").run()
    prompt = provider.requests[-1].messages
    assert texts(prompt) == [
        "Summary of the conversation so far:\n\nThe user asked about cats; we answered.",
        "and dogs?",
    ]
    view = await session.read_view()
    assert texts(view.messages)[:2] == ["tell me about cats", "cats are great"]


async def test_compaction_with_nothing_to_say_opens_no_frame(make_core: Any) -> None:
    async def empty(messages: Sequence[Message]) -> str:
        return "  "

    core = make_core([reply("a")], plugins=[functools.partial(Compaction, empty)])
    session = await core.session("s").open()
    assert await session.compact() is None  # no messages yet
    await session.turn("x").run()
    assert await session.compact() is None  # an empty summary


def test_transcript_shows_tool_calls() -> None:
    from lash.types import ToolCallPart

    msg = Message(
        id="m",
        role="assistant",
        parts=(ToolCallPart(id="c", name="grep", arguments={"pattern": "x"}),),
    )
    assert render_transcript([msg]) == 'assistant: [calls grep({"pattern":"x"})]'


async def test_observational_memory_and_rolling_history_compose(make_core: Any) -> None:
    """Memory rewrites the prompt first; the rolling window then trims what is left."""
    observed = "<observations>\n* 🔴 User talked about cats\n</observations>"
    observer = ScriptedProvider([reply(observed), reply(observed)])
    config = ObservationalMemoryConfig(
        observation_buffer_tokens=0,
        observation_message_tokens=40,
        observation_block_after_tokens=40,
    )
    memory = functools.partial(ObservationalMemory, config, provider=observer, model="obs")
    history = functools.partial(RollingHistory, max_context_tokens=100_000)
    provider = ScriptedProvider([reply("cats purr " * 20), reply("ok")])
    core = make_core(provider, plugins=[memory, history])
    session = await core.session("s").open()
    await session.turn("tell me about cats " * 5).run()
    await session.turn("and dogs?").run()
    prompt = provider.requests[-1].messages
    assert "User talked about cats" in prompt[1].text
    assert texts(prompt)[-1] == "and dogs?"
    assert not any("cats purr" in t for t in texts(prompt))
    view = await session.read_view()
    assert texts(view.messages)[0] == "tell me about cats " * 5  # durable history intact


async def test_llm_query_answers_and_reports_its_usage(make_core: Any) -> None:
    side = ScriptedProvider(
        [reply("Paris", usage=TokenUsage(input_tokens=7, output_tokens=1))], model="side-model"
    )
    provider = ScriptedProvider(
        [
            tool_call("llm_query", {"prompt": "Capital of France?", "system": "Be brief."}, "c1"),
            reply("It is Paris."),
        ]
    )
    store = MemoryStore()
    core = make_core(provider, tools=[LlmQuery(side, "side-model")], store=store)
    session = await core.session("s").open()
    result = await session.turn("ask").run()

    assert result.tool_calls[0].output == "Paris"
    assert side.requests[0].system == "Be brief."
    assert side.requests[0].messages[0].text == "Capital of France?"
    assert [(e.source, e.model, e.usage) for e in result.children_usage] == [
        ("llm_query", "side-model", TokenUsage(input_tokens=7, output_tokens=1))
    ]
    assert result.total_usage() == result.usage + TokenUsage(input_tokens=7, output_tokens=1)
    report = await session.usage_report()
    assert {(r.source, r.model) for r in report.by_source_model} == {
        ("turn", "test-model"),
        ("llm_query", "side-model"),
    }


async def test_llm_query_failure_is_a_tool_error(make_core: Any) -> None:
    side = ScriptedProvider([provider_error("http", message="boom")])
    provider = ScriptedProvider([tool_call("llm_query", {"prompt": "?"}, "c1"), reply("sorry")])
    core = make_core(provider, plugins=[functools.partial(LlmTools, side, "m")])
    session = await core.session("s").open()
    result = await session.turn("ask").run()
    record = result.tool_calls[0]
    assert record.status == "failure" and record.error_code == "llm_query_failed"
    assert "boom" in record.output["message"]
    assert result.children_usage == ()
