"""`LashCore`: the app-wide wiring (provider, model, stores, effect host, tools, plugins).

Durability is declared, never implied: the builder needs an explicit store (or an explicit
``without_store()``) and an explicit effect host, and refuses stores whose durability
disagrees (a durable session store with ephemeral attachments, say). ``LashCore.local(path)``
is the named embedded default: one SQLite file for every facet, files beside it, inline host.
"""

from __future__ import annotations

import asyncio
import logging
import os
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from lash.clock import Clock, SystemClock
from lash.errors import (
    DurableStoreFacet,
    EmbedError,
    LashRuntimeError,
    RuntimeErrorCode,
    StoreError,
)
from lash.providers.base import LlmProvider
from lash.providers.retry import RetryPolicy
from lash.runtime.await_events import (
    AWAIT_EVENT_UNSUPPORTED,
    AwaitEventResolver,
    Resolution,
    ResolveReceipt,
    WaitIdentity,
)
from lash.runtime.config import CoreConfig
from lash.runtime.effect_host import EffectHost, InlineEffectHost
from lash.runtime.lease import LeaseTimings
from lash.runtime.observation import LiveReplayStore
from lash.runtime.plugins import Plugin, PluginSessionContext
from lash.runtime.scope import ExecutionScope, require_id
from lash.runtime.session import LashSession, ParkedSession, fork_session_state
from lash.runtime.state import SessionState
from lash.stores.base import AttachmentStore, DurabilityTier, ProcessEnvStore, SessionStore
from lash.stores.liveness import local_process_owner
from lash.tools.base import Tool, ToolProvider
from lash.trace.base import TraceSink
from lash.types import (
    LeaseOwner,
    ModelSpec,
    PendingTurnInput,
    PendingTurnInputDraft,
    SessionMeta,
    TurnInput,
    TurnInputIngress,
    VacuumReport,
)

__all__ = ["ACLOSE_MAINTENANCE_TIMEOUT_S", "LashCore", "LashCoreBuilder", "SessionOpener"]

ACLOSE_MAINTENANCE_TIMEOUT_S = 10.0
"""How long :meth:`LashCore.aclose` waits for the sessions' background ``turn_persisted`` runs
before cancelling the rest (per core: ``core.aclose_maintenance_timeout_s``)."""

PluginFactory = Callable[[], Plugin]


class SessionOpener:
    """Opens one session id: ``await core.session("chat-1").open()``."""

    def __init__(self, core: LashCore, session_id: str) -> None:
        self._core = core
        self._session_id = require_id(session_id, "session id")
        self._owner: LeaseOwner | None = None
        self._fresh = False

    def owner(self, owner: LeaseOwner) -> SessionOpener:
        """Claim the lease with this identity (stable ids let a redriven host re-enter)."""
        self._owner = owner
        return self

    async def open(self) -> LashSession:
        """Load committed state and return a live handle."""
        return await self._core._open(self._session_id, self._owner)


class LashCore:
    """Shared configuration; one per application."""

    def __init__(self, config: CoreConfig) -> None:
        self._cfg = config
        self._closed = False
        # Weak: a session the host dropped can be collected; one with background runs still
        # going stays alive through its tasks, which is exactly when aclose needs it.
        self._sessions: weakref.WeakSet[LashSession] = weakref.WeakSet()
        self.aclose_maintenance_timeout_s = ACLOSE_MAINTENANCE_TIMEOUT_S

    # --- construction ---------------------------------------------------------------------

    @staticmethod
    def builder() -> LashCoreBuilder:
        """Explicit wiring."""
        return LashCoreBuilder()

    @classmethod
    def local(
        cls,
        path: str | os.PathLike[str],
        *,
        provider: LlmProvider,
        model: ModelSpec,
        tools: Iterable[Tool | ToolProvider] = (),
        plugins: Iterable[PluginFactory] = (),
        lease_timings: LeaseTimings | None = None,
        system_prompt: str | None = None,
        max_turns: int | None = 50,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
    ) -> LashCore:
        """The embedded durable default: SQLite for every facet, attachments beside it."""
        from lash.stores.sqlite import SqliteStore

        store = SqliteStore(Path(path), clock=clock)
        builder = (
            cls.builder()
            .provider(provider)
            .model(model)
            .store(store)
            .effect_host(InlineEffectHost())
            .tools(tools)
            .plugins(plugins)
            .max_turns(max_turns)
        )
        if lease_timings is not None:
            builder.lease_timings(lease_timings)
        if system_prompt is not None:
            builder.system_prompt(system_prompt)
        if retry is not None:
            builder.retry(retry)
        if clock is not None:
            builder.clock(clock)
        return builder.build()

    # --- properties -----------------------------------------------------------------------

    @property
    def config(self) -> CoreConfig:
        """The wiring."""
        return self._cfg

    @property
    def store(self) -> SessionStore | None:
        """The session store (``None`` for a store-less core)."""
        return self._cfg.store

    @property
    def effect_host(self) -> EffectHost:
        """The effect host."""
        return self._cfg.effect_host

    # --- sessions -------------------------------------------------------------------------

    def session(self, session_id: str) -> SessionOpener:
        """An opener for ``session_id``."""
        self._check_open()
        return SessionOpener(self, session_id)

    async def resume(self, parked: ParkedSession) -> LashSession:
        """Reopen a parked session."""
        return await self.session(parked.session_id).open()

    async def fork_session(
        self,
        source_session_id: str,
        session_id: str,
        *,
        hidden_tools: Iterable[str] = (),
        owner: LeaseOwner | None = None,
    ) -> LashSession:
        """Start ``session_id`` from where ``source_session_id`` committed last (its active
        path, frames and tool curation) and open it. ``hidden_tools`` are names the fork may
        never call, whatever id serves them; tools the sources started serving since the
        parent's commit are discovered. The parent is untouched."""
        self._check_open()
        who = owner or local_process_owner()
        await fork_session_state(
            self._cfg, source_session_id, session_id, hidden_tools=hidden_tools, owner=who
        )
        return await self._open(session_id, who)

    def _check_open(self) -> None:
        if self._closed:
            raise EmbedError("core_closed", "this LashCore was closed")

    async def _open(self, session_id: str, owner: LeaseOwner | None) -> LashSession:
        self._check_open()
        cfg = self._cfg
        state = SessionState(session_id)
        if cfg.store is not None:
            try:
                persisted = await cfg.store.load_session(session_id, active_path_only=True)
                if persisted is not None:
                    state = SessionState.from_persisted(persisted)
                lease = await cfg.store.get_lease(session_id)
                if await cfg.store.load_session_meta(session_id) is None:
                    await cfg.store.save_session_meta(
                        SessionMeta(
                            session_id=session_id,
                            created_at_ms=cfg.clock.now_ms(),
                            model=cfg.model.id,
                            name=session_id,
                        )
                    )
            except StoreError as err:
                raise LashRuntimeError(
                    "session_head_refresh", f"loading session {session_id!r} failed: {err}"
                ) from err
            # Only a *released* lease proves nobody can still commit under it; an unexpired or
            # merely expired-looking one (clocks differ, e.g. Postgres decides by its own)
            # forces a reload before the first turn.
            if lease is None:
                state.lease_generation = 0
            elif lease.lease_token == "":
                state.lease_generation = lease.fencing_token
        plugins: list[Plugin] = []
        for factory in cfg.plugins:
            try:
                plugin = factory()
                await plugin.open_session(
                    PluginSessionContext(
                        session_id=session_id,
                        state=dict(state.checkpoint.plugin_state.get(plugin.id) or {}),
                        core=self,
                    )
                )
            except Exception as err:
                raise LashRuntimeError(
                    RuntimeErrorCode.PLUGIN_SESSION_MANAGER,
                    f"building the plugin session for {session_id!r} failed: {err}",
                ) from err
            plugins.append(plugin)
        projectors = [
            p.id for p in plugins if type(p).project_tool_output is not Plugin.project_tool_output
        ]
        if len(projectors) > 1:
            raise EmbedError(
                "duplicate_tool_result_projector",
                "exactly one plugin may own the tool-result projection; found "
                + ", ".join(repr(i) for i in projectors),
            )
        cfg.effect_host.turn_control.unrevoke_session(session_id)
        unrevoke = getattr(cfg.effect_host, "unrevoke_await_events_for_session", None)
        if unrevoke is not None:
            unrevoke(session_id)
        session = LashSession(self, cfg, state, plugins, owner or local_process_owner())
        self._sessions.add(session)
        return session

    async def enqueue_turn_input(
        self,
        session_id: str,
        turn_input: str | TurnInput,
        *,
        source_key: str | None = None,
        input_id: str | None = None,
        ingress: TurnInputIngress | None = None,
        plugin_inputs: dict[str, Any] | None = None,
    ) -> PendingTurnInput:
        """Persist input for a session without opening a competing writer."""
        require_id(session_id, "session id")
        store = self._cfg.store
        if store is None:
            raise LashRuntimeError(
                RuntimeErrorCode.STORE_COMMIT_FAILED,
                "queued turn input requires a persistent runtime store",
            )
        if plugin_inputs:
            raise LashRuntimeError(
                RuntimeErrorCode.DURABLE_EFFECT_LIVE_PLUGIN_INPUT,
                "pending input must be serialisable; live plugin inputs cannot be enqueued",
            )
        if input_id is not None:
            require_id(input_id, "input id")
        if source_key is not None:
            require_id(source_key, "source key")
        draft = PendingTurnInputDraft(
            session_id=session_id,
            input=TurnInput.of(turn_input),
            ingress=ingress or TurnInputIngress.next_turn(),
            input_id=input_id,
            source_key=source_key,
        )
        try:
            pending = await store.enqueue_turn_input(draft)
        except StoreError as err:
            raise err.to_runtime_error() from err
        try:
            self._cfg.live_replay.append(
                session_id, 0, "queue_changed", change="enqueued", ids=(pending.input_id,)
            )
        except Exception:  # best-effort observation
            pass
        return pending

    async def delete_session(self, session_id: str) -> None:
        """Delete a session and everything stored for it (idempotent)."""
        require_id(session_id, "session id")
        self._cfg.effect_host.turn_control.revoke_session(session_id)
        host = self._cfg.effect_host
        if isinstance(host, AwaitEventResolver):
            await host.revoke_await_events_for_session(session_id)
        self._cfg.live_replay.forget(session_id)
        if self._cfg.store is not None:
            try:
                await self._cfg.store.delete_session(session_id)
            except StoreError as err:
                raise err.to_runtime_error() from err

    # --- durable waits (a pending tool parks its turn until its key is resolved) ----------

    def _waits(self) -> AwaitEventResolver:
        host = self._cfg.effect_host
        if not isinstance(host, AwaitEventResolver):
            raise LashRuntimeError(
                AWAIT_EVENT_UNSUPPORTED, "this core's effect host has no durable waits"
            )
        return host

    def await_event_key(self, session_id: str, turn_id: str, wait: WaitIdentity) -> str:
        """The key of a wait in a turn, e.g. ``WaitIdentity.tool_completion(call_id)`` for the
        ``call_id`` of a ``ToolCallStarted`` event; the same inputs give the same key."""
        return self._waits().await_event_key(ExecutionScope.turn(session_id, turn_id), wait)

    async def resolve_await_event(self, key: str, resolution: Resolution) -> ResolveReceipt:
        """Resolve a durable wait by key: first writer wins (``already_resolved`` carries the
        winner); an altered, foreign or revoked key is ``unknown_or_revoked``."""
        return await self._waits().resolve_await_event(key, resolution)

    async def peek_await_event(self, key: str) -> Resolution | None:
        """A wait's terminal resolution, or None while it is pending."""
        return await self._waits().peek_await_event(key)

    async def cancel_await_events(self, session_id: str) -> int:
        """Resolve a session's outstanding waits as cancelled (new waits still work)."""
        require_id(session_id, "session id")
        return await self._waits().cancel_await_events_for_session(session_id)

    async def vacuum(self) -> VacuumReport:
        """Physically remove terminal ingress tombstones and tombstoned nodes (host lever)."""
        if self._cfg.store is None:
            return VacuumReport()
        try:
            return await self._cfg.store.vacuum()
        except StoreError as err:
            raise err.to_runtime_error() from err

    async def list_sessions(self) -> list[SessionMeta]:
        """Every stored session."""
        if self._cfg.store is None:
            return []
        return await self._cfg.store.list_sessions()

    # --- lifecycle ------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Let the open sessions' background ``turn_persisted`` runs finish (for at most
        :attr:`aclose_maintenance_timeout_s`, then cancel them), then close the provider and
        the stores: no late run reaches a closed store."""
        if self._closed:
            return
        self._closed = True
        await self._drain_maintenance()
        cfg = self._cfg
        if cfg.trace is not None:
            try:
                cfg.trace.flush()
            except Exception:  # tracing is an observer: never fail a shutdown for it
                logging.getLogger(__name__).exception("flushing the trace sink failed")
        await cfg.provider.aclose()
        closers = [cfg.store, cfg.attachments, cfg.process_envs]
        seen: set[int] = set()
        for closer in closers:
            if closer is None or id(closer) in seen:
                continue
            seen.add(id(closer))
            aclose = getattr(closer, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _drain_maintenance(self) -> None:
        sessions = list(self._sessions)
        if not sessions:
            return
        try:
            async with asyncio.timeout(self.aclose_maintenance_timeout_s):
                await asyncio.gather(*(s.wait_maintenance() for s in sessions))
        except TimeoutError:
            logging.getLogger(__name__).warning(
                "closing the core: cancelling turn-persisted runs still going after %ss",
                self.aclose_maintenance_timeout_s,
            )
        # Also after a clean wait: a run may have been scheduled while the others finished.
        await asyncio.gather(*(s.cancel_maintenance() for s in sessions))

    async def __aenter__(self) -> LashCore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


_UNSET: Any = object()


class LashCoreBuilder:
    """Builds a :class:`LashCore`; :meth:`build` validates the wiring."""

    def __init__(self) -> None:
        self._provider: LlmProvider | None = None
        self._model: ModelSpec | None = None
        self._store: SessionStore | None | Any = _UNSET
        self._attachments: AttachmentStore | None = None
        self._process_envs: ProcessEnvStore | None = None
        self._effect_host: EffectHost | None = None
        self._tools: list[Tool] = []
        self._plugins: list[PluginFactory] = []
        self._lease_timings = LeaseTimings()
        self._clock: Clock | None = None
        self._live_replay: LiveReplayStore | None = None
        self._retry: RetryPolicy | None = None
        self._max_turns: int | None = 50
        self._system_prompt: str | None = None
        self._sleep: Callable[[float], Any] = asyncio.sleep
        self._trace: TraceSink | None = None
        self._batch_tool = True

    def provider(self, provider: LlmProvider) -> LashCoreBuilder:
        """The model provider."""
        self._provider = provider
        return self

    def model(self, model: ModelSpec) -> LashCoreBuilder:
        """The default model."""
        self._model = model
        return self

    def store(self, store: SessionStore) -> LashCoreBuilder:
        """The session store (``MemoryStore()``, ``SqliteStore(path)``, ...)."""
        self._store = store
        return self

    def without_store(self) -> LashCoreBuilder:
        """Explicitly run store-less: no leases, no commits, nothing survives the process."""
        self._store = None
        return self

    def attachment_store(self, store: AttachmentStore) -> LashCoreBuilder:
        """The attachment store (defaults to the session store's own facet)."""
        self._attachments = store
        return self

    def process_env_store(self, store: ProcessEnvStore) -> LashCoreBuilder:
        """The process-env store (defaults to the session store's own facet)."""
        self._process_envs = store
        return self

    def effect_host(self, host: EffectHost) -> LashCoreBuilder:
        """Where effects run (``InlineEffectHost()`` in-process)."""
        self._effect_host = host
        return self

    def tools(self, tools: Iterable[Tool | ToolProvider]) -> LashCoreBuilder:
        """Add tools or tool providers."""
        for item in tools:
            if isinstance(item, ToolProvider) and not isinstance(item, Tool):
                self._tools.extend(item.tools())
            else:
                self._tools.append(item)
        return self

    def tool(self, tool: Tool) -> LashCoreBuilder:
        """Add one tool."""
        self._tools.append(tool)
        return self

    def plugins(self, factories: Iterable[PluginFactory]) -> LashCoreBuilder:
        """Add plugin factories (one plugin instance per session)."""
        self._plugins.extend(factories)
        return self

    def plugin(self, factory: PluginFactory) -> LashCoreBuilder:
        """Add one plugin factory."""
        self._plugins.append(factory)
        return self

    def lease_timings(self, timings: LeaseTimings) -> LashCoreBuilder:
        """Session lease TTL and renewal."""
        self._lease_timings = timings
        return self

    def clock(self, clock: Clock) -> LashCoreBuilder:
        """The clock every timestamp and lease decision reads."""
        self._clock = clock
        return self

    def sleep(self, sleep: Callable[[float], Any]) -> LashCoreBuilder:
        """The sleep used for retry backoff and renewal (inject to make tests instant)."""
        self._sleep = sleep
        return self

    def live_replay(self, replay: LiveReplayStore) -> LashCoreBuilder:
        """The bounded reconnect buffer."""
        self._live_replay = replay
        return self

    def retry(self, policy: RetryPolicy) -> LashCoreBuilder:
        """The provider retry ladder (default: the provider's ``retry``, else lash's)."""
        self._retry = policy
        return self

    def max_turns(self, max_turns: int | None) -> LashCoreBuilder:
        """Cap on model iterations per turn."""
        self._max_turns = max_turns
        return self

    def system_prompt(self, prompt: str | None) -> LashCoreBuilder:
        """The system prompt."""
        self._system_prompt = prompt
        return self

    def batch_tool(self, enabled: bool = True) -> LashCoreBuilder:
        """Offer the Standard protocol's ``batch`` tool (up to 25 concurrent calls in one).

        On by default, as in lash: it is advertised whenever the session has another
        callable tool. ``batch_tool(False)`` opts out.
        """
        self._batch_tool = enabled
        return self

    def trace(self, sink: TraceSink | None) -> LashCoreBuilder:
        """Write trace records (turns, model calls, tool calls, usage) to ``sink``."""
        self._trace = sink
        return self

    def build(self) -> LashCore:
        """Validate and wire."""
        if self._provider is None:
            raise EmbedError("missing_provider", "LashCore needs a provider (.provider(...))")
        if self._model is None:
            raise EmbedError(
                "missing_model_spec", "LashCore needs a model (.model(ModelSpec(...)))"
            )
        if self._effect_host is None:
            raise EmbedError(
                "missing_effect_host",
                "LashCore needs an explicit effect host (.effect_host(InlineEffectHost()))",
            )
        if self._store is _UNSET:
            raise EmbedError(
                "missing_session_store",
                "choose a store explicitly: .store(MemoryStore()), .store(SqliteStore(path)) "
                "or .without_store()",
            )
        store: SessionStore | None = self._store
        attachments = self._attachments or _facet(store, "attachments")
        process_envs = self._process_envs or _facet(store, "process_envs")
        if attachments is None:
            raise EmbedError("missing_attachment_store", "LashCore needs an attachment store")
        if process_envs is None:
            raise EmbedError("missing_process_env_store", "LashCore needs a process-env store")
        if store is not None and store.tier is DurabilityTier.DURABLE:
            if attachments.tier is not DurabilityTier.DURABLE:
                raise EmbedError(
                    "durable_store_peer_required",
                    f"a durable session store needs a durable "
                    f"{DurableStoreFacet.ATTACHMENT_STORE.label}",
                )
            if process_envs.tier is not DurabilityTier.DURABLE:
                raise EmbedError(
                    "durable_store_peer_required",
                    f"a durable session store needs a durable "
                    f"{DurableStoreFacet.PROCESS_ENV_STORE.label}",
                )
        names: set[str] = set()
        for tool in self._tools:
            name = tool.spec.name
            if name in names:
                raise EmbedError("duplicate_tool", f"two tools are named {name!r}")
            names.add(name)
        clock = self._clock or getattr(store, "clock", None) or SystemClock()
        config = CoreConfig(
            provider=self._provider,
            model=self._model,
            store=store,
            attachments=attachments,
            process_envs=process_envs,
            effect_host=self._effect_host,
            tools=tuple(self._tools),
            plugins=tuple(self._plugins),
            lease_timings=self._lease_timings,
            clock=clock,
            live_replay=self._live_replay or LiveReplayStore(clock=clock),
            retry=self._retry or _provider_retry(self._provider),
            max_turns=self._max_turns,
            system_prompt=self._system_prompt,
            sleep=self._sleep,
            provider_id=getattr(self._provider, "kind", None),
            trace=self._trace,
            batch_tool=self._batch_tool,
        )
        return LashCore(config)


def _provider_retry(provider: LlmProvider) -> RetryPolicy:
    """The adapter's own policy (``OpenAIChatProvider(retry=...)``), else lash's defaults."""
    policy = getattr(provider, "retry", None)
    return policy if isinstance(policy, RetryPolicy) else RetryPolicy()


def _facet(store: SessionStore | None, name: str) -> Any:
    """The store's own attachment/process-env facet; in-memory ones for ephemeral stores."""
    facet = getattr(store, name, None) if store is not None else None
    if callable(facet):
        facet = facet()
    if facet is not None:
        return facet
    if store is None or store.tier is DurabilityTier.EPHEMERAL:
        from lash.stores.memory import MemoryAttachmentStore, MemoryProcessEnvStore

        return MemoryAttachmentStore() if name == "attachments" else MemoryProcessEnvStore()
    return None
