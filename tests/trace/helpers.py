"""A scripted run that writes a real trace (one tool call, two model calls)."""

from __future__ import annotations

import lash
from lash.testing import ScriptedProvider, reply, tool_call
from lash.trace import TraceSink


@lash.tool
async def echo(ctx: lash.ToolContext, text: str) -> str:
    """Echo the text back."""
    return f"echo: {text}"


async def traced_run(sink: TraceSink, *, turns: int = 1) -> list[lash.TurnResult]:
    """Run ``turns`` turns, each calling ``echo`` once and then answering."""
    steps: list[object] = []
    for n in range(turns):
        steps += [tool_call("echo", {"text": f"hi {n}"}, f"call-{n}"), reply(f"done {n}")]
    core = (
        lash.LashCore.builder()
        .provider(ScriptedProvider(steps))  # type: ignore[arg-type]
        .model(lash.ModelSpec("scripted"))
        .store(lash.stores.MemoryStore())
        .effect_host(lash.InlineEffectHost())
        .tools([echo])
        .trace(sink)
        .build()
    )
    results = []
    async with core:
        session = await core.session("s1").open()
        for n in range(turns):
            results.append(await session.turn(f"say hi {n}").turn_id(f"t{n}").run())
    return results
