"""Observational memory: a model-maintained observation log in place of old conversation.

The context strategy of lash's ``observational_memory`` plugin. An *observer* model call turns
stretches of conversation into terse, dated observations; a *reflector* call condenses the log
when it grows. The log lives as plugin nodes in the session graph (see
:mod:`lash.plugins._memory_state`), so it is as durable as the turns it describes and is
restored by reading the graph.

Two paths keep it current:

- **After each commit** (``turn_persisted``, only once the turn is durable): when at least
  ``observation_buffer_tokens`` of messages are unbuffered, observe them ahead of need into
  buffered-observation nodes; when the active log reaches half of
  ``reflection_observation_tokens`` (``reflection_buffer_activation_bps``), write a buffered
  reflection. The append names the post-persist leaf as its required ancestor, so it is
  refused on a branch that left that leaf and lands after any newer turn, never over it.
- **Before a prompt** (``transform_context``): when the unobserved messages reach
  ``observation_message_tokens`` the buffered observations are activated (the newest kept raw
  within ``observation_buffer_tokens``); only past ``observation_block_after_tokens`` does the
  turn wait for an observer call. Likewise the buffered reflection replaces a log over
  ``reflection_observation_tokens``, and past ``reflection_block_after_tokens`` the turn waits
  for a reflector call. These appends happen under the turn's own lease, before its commit.
  If that observer or reflector call fails, the turn is not failed: the prompt is built from
  the memory as it stands (raw messages past the log), the failure is logged and published as
  a :data:`MEMORY_MAINTENANCE_FAILED_EVENT` plugin event, and the next turn tries again. lash
  (Rust) propagates the error and fails the turn; nothing in it makes that a rule, and a
  secondary model being down would otherwise stop every later turn of a long session, so
  this port degrades instead. Store, lease and fencing errors of the append still fail it.

The prompt is then the leading system messages, the memory (instructions, the log with its
hints, a continuation reminder) and the messages after ``observed_through_message_id``.

The observer and reflector use the session's provider and model unless given their own; their
usage is committed with the nodes they produced (sources ``observer`` and ``reflector``).

**Durable turns.** Before a prompt, the observer and reflector calls go through the turn's
:class:`~lash.runtime.effect_host.TurnCompletions`: each is a journaled ``direct_completion``
effect (a failure is recorded as data, so a redrive degrades the same way), and a redriven
turn replays the recorded answer instead of asking the model again. The nodes such a turn
appends carry its turn id (:data:`PREPARED_IN_TURN`); a redrive that finds them on the graph
(the first run died after appending) makes its decisions on the graph as it was before them
and takes each recorded append as done, so it crosses the same effects in the same order and
the main model call's envelope is unchanged. Post-persist maintenance runs after the commit,
outside any turn's effects, and calls its models directly.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from lash.errors import LashRuntimeError, StoreError
from lash.plugins._completion import (
    direct_completion,
    usage_entry,
    user_message,
)
from lash.plugins._memory_prompts import (
    CONTEXT_PREAMBLE,
    CONTINUATION_HINT,
    MemoryOutput,
    build_observer_prompt,
    build_reflector_prompt,
    observer_system_prompt,
    parse_memory_output,
    reflector_system_prompt,
    truncate_observation_tail,
)
from lash.plugins._memory_state import (
    ACTIVE_STATE_PLUGIN_TYPE,
    BUFFERED_OBSERVATION_PLUGIN_TYPE,
    BUFFERED_REFLECTION_PLUGIN_TYPE,
    PREPARED_IN_TURN,
    ActiveMemory,
    MemoryGraphState,
    ObservedMessage,
    active_state_node,
    approx_token_count,
    buffered_observation_node,
    buffered_reflection_node,
    build_graph_state,
    prefix_len_covering_tokens,
    prefix_len_leaving_tail_budget,
    retained_tokens_after,
    split_message_batches,
    total_tokens,
    unobserved_messages,
)
from lash.providers.base import LlmProvider
from lash.providers.retry import RetryPolicy
from lash.runtime.effect_host import TurnCompletions
from lash.runtime.plugins import (
    AppendedPluginNodes,
    Directive,
    EmitEvent,
    Plugin,
    PluginSessionContext,
    PrepareContext,
    SessionGraphAccess,
    TurnPersistedContext,
)
from lash.types import (
    LlmRequest,
    LlmResponse,
    Message,
    ModelSpec,
    PluginPayload,
    Record,
    Role,
    SessionGraph,
    SessionNode,
    TextPart,
    TokenLedgerEntry,
)

__all__ = [
    "ACTIVE_STATE_PLUGIN_TYPE",
    "BUFFERED_OBSERVATION_PLUGIN_TYPE",
    "BUFFERED_REFLECTION_PLUGIN_TYPE",
    "MEMORY_MAINTENANCE_FAILED_EVENT",
    "OBSERVATIONAL_MEMORY_PLUGIN_ID",
    "ActiveMemory",
    "MemoryGraphState",
    "MemoryOutput",
    "ObservationalMemory",
    "ObservationalMemoryConfig",
    "build_graph_state",
    "parse_memory_output",
    "prefix_len_covering_tokens",
    "retained_tokens_after",
    "should_run_async_maintenance",
]

log = logging.getLogger(__name__)

OBSERVATIONAL_MEMORY_PLUGIN_ID = "observational_memory"
MEMORY_MAINTENANCE_FAILED_EVENT = "observational_memory.maintenance_failed"
"""Plugin event name published when an observer/reflector call failed; its payload is
``{phase, worker, error}`` (``phase``: ``"prepare"`` before a prompt, ``"post_persist"``)."""
_MAX_ADVANCE_STEPS = 6


class ObservationalMemoryConfig(Record, frozen=True, kw_only=True):
    """Token thresholds (estimates, see :mod:`lash.plugins._memory_state`); lash's defaults."""

    observation_message_tokens: int = 30_000
    """Unobserved messages at which the prompt stops carrying them raw."""
    observation_buffer_tokens: int = 6_000
    """Buffering interval after commits; also the raw tail kept when activating."""
    observation_block_after_tokens: int = 36_000
    """Unobserved messages at which a turn waits for an observer call."""
    observation_max_tokens_per_batch: int = 10_000
    previous_observer_tokens: int = 2_000
    """How much of the existing log (its newest part) the observer is shown."""
    reflection_observation_tokens: int = 40_000
    """Log size at which a buffered reflection replaces it."""
    reflection_buffer_activation_bps: int = 5_000
    """Share (basis points) of ``reflection_observation_tokens`` that starts a reflection."""
    reflection_block_after_tokens: int = 48_000
    """Log size at which a turn waits for a reflector call."""

    def __post_init__(self) -> None:
        for name in self.__struct_fields__:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.reflection_buffer_activation_bps > 10_000:
            raise ValueError("reflection_buffer_activation_bps must be <= 10000")

    @property
    def observation_retention_tokens(self) -> int:
        """Raw messages kept unobserved at the end of the prompt when activating."""
        return self.observation_buffer_tokens

    @property
    def reflection_buffer_activation_tokens(self) -> int:
        """Log size at which maintenance writes a buffered reflection."""
        return self.reflection_observation_tokens * self.reflection_buffer_activation_bps // 10_000


def _start_after(state: MemoryGraphState) -> str | None:
    if state.buffered_observations:
        return state.buffered_observations[-1].observed_through_message_id
    return state.active.observed_through_message_id if state.active is not None else None


def should_run_async_maintenance(config: ObservationalMemoryConfig, graph: SessionGraph) -> bool:
    """Whether a commit leaves work for post-persist maintenance (cheap: no model call)."""
    state = build_graph_state(graph)
    interval = config.observation_buffer_tokens
    if interval > 0 and total_tokens(unobserved_messages(graph, _start_after(state))) >= interval:
        return True
    active_tokens = approx_token_count(state.active.observations) if state.active else 0
    return (
        state.buffered_reflection is None
        and active_tokens >= config.reflection_buffer_activation_tokens
    )


def _merge(
    previous: ActiveMemory | None,
    observed_through_message_id: str,
    observations: str,
    current_task: str | None,
    suggested_response: str | None,
) -> ActiveMemory:
    """Append new observations to the log; new hints win, old ones carry over."""
    log_text = previous.observations if previous is not None else ""
    addition = observations.strip()
    if log_text.strip() and addition:
        log_text += "\n\n"
    log_text += addition
    return ActiveMemory(
        state_node_id=previous.state_node_id if previous is not None else "",
        observed_through_message_id=observed_through_message_id,
        observations=log_text,
        current_task=current_task or (previous.current_task if previous else None),
        suggested_response=suggested_response
        or (previous.suggested_response if previous else None),
    )


def _active_node(memory: ActiveMemory) -> PluginPayload:
    return active_state_node(
        observed_through_message_id=memory.observed_through_message_id or "",
        observations=memory.observations,
        current_task=memory.current_task,
        suggested_response=memory.suggested_response,
    )


def _memory_message(name: str, role: Role, text: str) -> Message:
    return Message(id=f"observational-memory:{name}", role=role, parts=(TextPart(text=text),))


def memory_context_messages(active: ActiveMemory) -> list[Message]:
    """The prompt messages standing in for the observed conversation."""
    block = f"<observations>\n{active.observations.strip()}\n</observations>"
    if active.current_task is not None:
        block += f"\n\n<current-task>\n{active.current_task.strip()}\n</current-task>"
    if active.suggested_response is not None:
        block += (
            f"\n\n<suggested-response>\n{active.suggested_response.strip()}\n</suggested-response>"
        )
    return [
        _memory_message("context", "system", CONTEXT_PREAMBLE),
        _memory_message("log", "system", block),
        _memory_message(
            "reminder", "user", f"<system-reminder>{CONTINUATION_HINT}</system-reminder>"
        ),
    ]


def memory_tail_start(
    messages: Sequence[Message], prefix_len: int, observed_through_message_id: str | None
) -> int:
    """Where the raw tail after the memory starts: just after the last observed message
    (never inside the system prefix), moved back over tool results so the tail never opens
    with a result whose call was summarised away (providers reject orphaned results)."""
    start = prefix_len
    if observed_through_message_id is not None:
        for index, message in enumerate(messages):
            if message.id == observed_through_message_id:
                start = max(prefix_len, index + 1)
                break
    while prefix_len < start < len(messages) and messages[start].role == "tool":
        start -= 1
    return start


class _NoObserver(Exception):
    """Neither the plugin nor the session names a provider and model for the workers."""


def _degradable(err: Exception) -> bool:
    """True for an observer/reflector failure the prompt can degrade around (the model or
    provider could not do the work); runtime and store errors (lease, fencing) still fail."""
    return not isinstance(err, LashRuntimeError | StoreError)


class _PrepareRun:
    """The graph access of one prompt's advance, and the turn's completions.

    On a durable turn the nodes appended here carry the turn id. A redrive that finds such
    nodes on the graph (its first run died after appending them) must cross the same effects
    as that run did: it reads the graph as it was before the first of them, and takes each of
    its own appends as already done, moving the view onto the recorded node instead, until
    none is left and the live graph is read again.
    """

    def __init__(
        self, access: SessionGraphAccess, completions: TurnCompletions | None, turn_id: str
    ) -> None:
        self.access = access
        self.completions = completions
        self.turn_id = turn_id
        self.recorded: list[SessionNode] = []
        self.leaf: str | None = None
        if completions is not None and completions.durable:
            own = [n for n in access.graph().active_path() if _prepared_in(n) == turn_id]
            if own and own[0].parent_node_id is not None:
                self.recorded = own
                self.leaf = own[0].parent_node_id

    def graph(self) -> SessionGraph:
        """The graph decisions are made on (the live one unless replaying own appends)."""
        live = self.access.graph()
        if not self.recorded:
            return live
        return SessionGraph(live.nodes(), leaf_node_id=self.leaf)

    async def append(
        self,
        nodes: Sequence[PluginPayload],
        requires_ancestor_node_id: str | None,
        usage: Sequence[TokenLedgerEntry],
    ) -> bool:
        """Append ``nodes`` (or, replaying, take the first run's append of them as done)."""
        if self.recorded:
            taken = self.recorded[: len(nodes)]
            del self.recorded[: len(nodes)]
            self.leaf = taken[-1].node_id
            return True
        if self.completions is not None and self.completions.durable:
            nodes = [
                PluginPayload(
                    plugin_type=n.plugin_type, body={**n.body, PREPARED_IN_TURN: self.turn_id}
                )
                for n in nodes
            ]
        result = await self.access.append_plugin_nodes(
            nodes, requires_ancestor_node_id=requires_ancestor_node_id, usage=usage
        )
        return isinstance(result, AppendedPluginNodes)


def _prepared_in(node: SessionNode) -> str | None:
    payload = node.payload
    if not isinstance(payload, PluginPayload) or not isinstance(payload.body, dict):
        return None
    turn = payload.body.get(PREPARED_IN_TURN)
    return turn if isinstance(turn, str) else None


class ObservationalMemory(Plugin):
    """Observational memory as a context strategy (plugin id ``observational_memory``).

    ``provider``/``model`` select the observer and reflector model (default: the session's);
    ``retry`` their retry policy (default: one attempt).
    """

    id = OBSERVATIONAL_MEMORY_PLUGIN_ID

    def __init__(
        self,
        config: ObservationalMemoryConfig | None = None,
        *,
        provider: LlmProvider | None = None,
        model: ModelSpec | str | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__()
        self.config = config or ObservationalMemoryConfig()
        self._provider = provider
        self._model = ModelSpec(model) if isinstance(model, str) else model
        self._retry = retry
        self._access: SessionGraphAccess | None = None
        self._failed: set[str] = set()  # workers that failed while preparing this turn
        self._failure_events: list[dict[str, Any]] = []

    async def open_session(self, ctx: PluginSessionContext) -> None:
        # nothing to restore from plugin state: the memory is rebuilt from the graph on use
        self.state = {}
        core_config = getattr(ctx.core, "config", None)
        if core_config is not None:
            self._provider = self._provider or core_config.provider
            self._model = self._model or core_config.model

    def bind_session_graph(self, access: SessionGraphAccess) -> None:
        self._access = access

    def memory_state(self) -> MemoryGraphState:
        """The memory as the session's committed graph has it now."""
        if self._access is None:
            return MemoryGraphState()
        return build_graph_state(self._access.graph())

    # --- the prompt -----------------------------------------------------------------------

    async def transform_context(
        self, ctx: PrepareContext, messages: list[Message]
    ) -> list[Message]:
        access = self._access
        self._failed = set()
        self._failure_events = []
        if access is None:
            return messages
        completions = ctx.completions if isinstance(ctx.completions, TurnCompletions) else None
        run = _PrepareRun(access, completions, ctx.turn_id)
        graph = run.graph()
        state = build_graph_state(graph)
        active = state.active
        pending = total_tokens(
            unobserved_messages(graph, active.observed_through_message_id if active else None)
        )
        log_tokens = approx_token_count(active.observations) if active else 0
        if (
            pending >= self.config.observation_message_tokens
            or log_tokens >= self.config.reflection_observation_tokens
        ):
            await self._advance(run)
            active = build_graph_state(access.graph()).active
        if active is None or active.is_empty:
            return messages
        prefix_len = 0
        while prefix_len < len(messages) and messages[prefix_len].role == "system":
            prefix_len += 1
        tail = memory_tail_start(messages, prefix_len, active.observed_through_message_id)
        return [*messages[:prefix_len], *memory_context_messages(active), *messages[tail:]]

    async def _advance(self, access: _PrepareRun) -> None:
        """Bring the active memory under the thresholds before a prompt is built."""
        cfg = self.config
        for _ in range(_MAX_ADVANCE_STEPS):
            graph = access.graph()
            state = build_graph_state(graph)
            active = state.active
            pending = unobserved_messages(
                graph, active.observed_through_message_id if active else None
            )
            pending_tokens = total_tokens(pending)
            if pending_tokens >= cfg.observation_message_tokens:
                if await self._activate_buffered_observations(access, graph, state, pending):
                    continue
                if pending_tokens >= cfg.observation_block_after_tokens and await self._observe_now(
                    access, graph, state, pending
                ):
                    continue
            log_tokens = approx_token_count(active.observations) if active else 0
            if log_tokens >= cfg.reflection_observation_tokens:
                if await self._activate_buffered_reflection(access, graph, state):
                    continue
                if log_tokens >= cfg.reflection_block_after_tokens and await self._reflect_now(
                    access, graph, state
                ):
                    continue
            return

    async def prepare_turn(self, ctx: PrepareContext) -> Sequence[Directive]:
        # transform_context ran just before: publish what failed while shaping this prompt
        events, self._failure_events = self._failure_events, []
        return [EmitEvent(event=event) for event in events]

    def _worker_failed(self, worker: str, phase: str, err: Exception) -> None:
        """Log an observer/reflector failure and queue its plugin event; the turn goes on."""
        log.warning("observational memory %s failed (%s): %s", worker, phase, err)
        self._failed.add(worker)
        self._failure_events.append(
            {
                "name": MEMORY_MAINTENANCE_FAILED_EVENT,
                "payload": {"phase": phase, "worker": worker, "error": str(err)},
            }
        )

    async def _activate_buffered_observations(
        self,
        access: _PrepareRun,
        graph: SessionGraph,
        state: MemoryGraphState,
        pending: list[ObservedMessage],
    ) -> bool:
        if not state.buffered_observations or not pending:
            return False
        # a chunk buffered by a post-persist run that raced this prompt's own observation may
        # cover messages the active log already has: merging it would repeat them and move
        # the observed-through mark back
        unobserved = {m.id for m in pending}
        chunks = [
            c for c in state.buffered_observations if c.observed_through_message_id in unobserved
        ]
        if not chunks:
            return False
        retained = retained_tokens_after(pending)
        merged = state.active
        for chunk in chunks:
            merged = _merge(
                merged,
                chunk.observed_through_message_id,
                chunk.observations,
                chunk.current_task,
                chunk.suggested_response,
            )
            if retained.get(chunk.observed_through_message_id, 0) <= (
                self.config.observation_retention_tokens
            ):
                break
        if merged is None:
            return False
        return await self._append(access, graph, [_active_node(merged)])

    async def _activate_buffered_reflection(
        self, access: _PrepareRun, graph: SessionGraph, state: MemoryGraphState
    ) -> bool:
        active, reflection = state.active, state.buffered_reflection
        if active is None or reflection is None:
            return False
        if reflection.source_state_node_id != active.state_node_id:
            return False
        node = active_state_node(
            observed_through_message_id=reflection.observed_through_message_id,
            observations=reflection.observations,
            current_task=reflection.current_task,
            suggested_response=reflection.suggested_response,
        )
        return await self._append(access, graph, [node])

    async def _observe_now(
        self,
        access: _PrepareRun,
        graph: SessionGraph,
        state: MemoryGraphState,
        pending: list[ObservedMessage],
    ) -> bool:
        until = prefix_len_leaving_tail_budget(pending, self.config.observation_retention_tokens)
        if until == 0 or "observer" in self._failed:
            return False
        merged = state.active
        usage: list[TokenLedgerEntry] = []
        observed = False
        for batch in split_message_batches(
            pending[:until], max(1, self.config.observation_max_tokens_per_batch)
        ):
            try:
                output, spent = await self._observe(merged, batch, access.completions)
            except Exception as err:
                if not _degradable(err):
                    raise
                self._worker_failed("observer", "prepare", err)
                break  # keep what the earlier batches observed
            usage.extend(spent)
            if output.is_empty:
                continue
            observed = True
            merged = _merge(
                merged,
                batch[-1].id,
                output.observations,
                output.current_task,
                output.suggested_response,
            )
        if not observed or merged is None:
            return False
        return await self._append(access, graph, [_active_node(merged)], usage)

    async def _reflect_now(
        self, access: _PrepareRun, graph: SessionGraph, state: MemoryGraphState
    ) -> bool:
        active = state.active
        if active is None or "reflector" in self._failed:
            return False
        try:
            output, usage = await self._reflect(active.observations, access.completions)
        except Exception as err:
            if not _degradable(err):
                raise
            self._worker_failed("reflector", "prepare", err)
            return False
        if not self._reflection_changes(active, output):
            return False
        node = active_state_node(
            observed_through_message_id=active.observed_through_message_id or "",
            observations=output.observations.strip(),
            current_task=output.current_task,
            suggested_response=output.suggested_response,
        )
        return await self._append(access, graph, [node], usage)

    # --- after the commit -----------------------------------------------------------------

    async def turn_persisted(self, ctx: TurnPersistedContext) -> None:
        graph = ctx.graph
        if not should_run_async_maintenance(self.config, graph):
            return
        if self._provider is None or self._model is None:
            log.debug("observational memory of %s has no model: no maintenance", ctx.session_id)
            return
        # plan both from the post-persist graph, before either append moves the leaf
        state = build_graph_state(graph)
        unbuffered = unobserved_messages(graph, _start_after(state))
        await self._buffer_observations(ctx, state, unbuffered)
        await self._buffer_reflection(ctx, state)

    async def _buffer_observations(
        self,
        ctx: TurnPersistedContext,
        state: MemoryGraphState,
        unbuffered: list[ObservedMessage],
    ) -> None:
        interval = self.config.observation_buffer_tokens
        if interval == 0:
            return
        total = total_tokens(unbuffered)
        if total < interval:
            return
        prefix = prefix_len_covering_tokens(unbuffered, total - total % interval)
        if not prefix:
            return
        batch_tokens = max(1, min(self.config.observation_max_tokens_per_batch, interval))
        preview = state.active
        nodes: list[PluginPayload] = []
        usage: list[TokenLedgerEntry] = []
        for batch in split_message_batches(unbuffered[:prefix], batch_tokens):
            output, spent = await self._observe(preview, batch)
            usage.extend(spent)
            if output.is_empty:
                continue
            observations = output.observations.strip()
            nodes.append(
                buffered_observation_node(
                    observed_through_message_id=batch[-1].id,
                    observations=observations,
                    current_task=output.current_task,
                    suggested_response=output.suggested_response,
                )
            )
            preview = _merge(
                preview,
                batch[-1].id,
                observations,
                output.current_task,
                output.suggested_response,
            )
        if nodes:
            await ctx.session_graph.append_plugin_nodes(
                nodes, requires_ancestor_node_id=ctx.leaf_node_id, usage=usage
            )

    async def _buffer_reflection(self, ctx: TurnPersistedContext, state: MemoryGraphState) -> None:
        active = state.active
        if active is None or state.buffered_reflection is not None:
            return
        tokens = approx_token_count(active.observations)
        if tokens < self.config.reflection_buffer_activation_tokens:
            return
        output, usage = await self._reflect(active.observations)
        if not self._reflection_changes(active, output):
            return
        node = buffered_reflection_node(
            source_state_node_id=active.state_node_id,
            observed_through_message_id=active.observed_through_message_id or "",
            observations=output.observations.strip(),
            current_task=output.current_task,
            suggested_response=output.suggested_response,
            observation_tokens=tokens,
        )
        await ctx.session_graph.append_plugin_nodes(
            [node], requires_ancestor_node_id=ctx.leaf_node_id, usage=usage
        )

    # --- the workers ----------------------------------------------------------------------

    @staticmethod
    def _reflection_changes(active: ActiveMemory, output: MemoryOutput) -> bool:
        if not output.observations.strip():
            return False
        return (
            output.observations.strip() != active.observations.strip()
            or output.current_task != active.current_task
            or output.suggested_response != active.suggested_response
        )

    async def _append(
        self,
        access: _PrepareRun,
        graph: SessionGraph,
        nodes: list[PluginPayload],
        usage: Sequence[TokenLedgerEntry] = (),
    ) -> bool:
        return await access.append(nodes, graph.leaf_node_id, usage)

    async def _observe(
        self,
        active: ActiveMemory | None,
        batch: Sequence[ObservedMessage],
        completions: TurnCompletions | None = None,
    ) -> tuple[MemoryOutput, tuple[TokenLedgerEntry, ...]]:
        existing = None
        if active is not None:
            existing = truncate_observation_tail(
                active.observations, self.config.previous_observer_tokens
            )
        prompt = build_observer_prompt(
            [m.rendered for m in batch],
            existing_observations=existing,
            current_task=active.current_task if active else None,
            suggested_response=active.suggested_response if active else None,
        )
        return await self._complete("observer", observer_system_prompt(), prompt, completions)

    async def _reflect(
        self, observations: str, completions: TurnCompletions | None = None
    ) -> tuple[MemoryOutput, tuple[TokenLedgerEntry, ...]]:
        prompt = build_reflector_prompt(observations)
        return await self._complete("reflector", reflector_system_prompt(), prompt, completions)

    async def _complete(
        self, kind: str, system: str, prompt: str, completions: TurnCompletions | None = None
    ) -> tuple[MemoryOutput, tuple[TokenLedgerEntry, ...]]:
        """One observer/reflector call: through the turn's effects when ``completions`` is
        given (before a prompt), straight to the provider otherwise (post-persist)."""
        provider, model = self._provider, self._model
        if provider is None or model is None:
            raise _NoObserver("observational memory has no provider/model for its " + kind)
        messages = [user_message(f"observational-memory:{kind}", prompt)]

        async def call() -> LlmResponse:
            return await direct_completion(
                provider, model, messages, system=system, retry=self._retry
            )

        if completions is None:
            response = await call()
        else:
            request = LlmRequest(
                model=model.id,
                messages=tuple(messages),
                system=system,
                max_output_tokens=model.max_output_tokens,
                reasoning=model.reasoning,
                capabilities=model.capabilities,
            )
            response = await completions.complete(self.id, kind, request, call)
        output = parse_memory_output(response.text)
        return output, usage_entry(kind, model, response)
