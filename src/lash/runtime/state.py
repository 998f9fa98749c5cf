"""The runtime's working copy of one session's committed state."""

from __future__ import annotations

import msgspec

from lash.runtime.observation import SessionReadView
from lash.types import (
    AgentFrameRecord,
    GraphDelta,
    LeaseFence,
    Message,
    PersistedSession,
    RuntimeCommit,
    SessionCheckpoint,
    SessionConfig,
    SessionGraph,
    TokenLedgerEntry,
    initial_frame_id,
    merge_ledger,
)

__all__ = ["SessionState"]


class SessionState:
    """Graph, checkpoint, frames and ledger as of ``head_revision``.

    ``lease_generation`` remembers the fencing token of the lease under which this copy was
    last written or loaded: a later lease whose token is exactly one higher (or the same)
    proves nobody else wrote in between, so the copy need not be reloaded.
    """

    __slots__ = (
        "agent_frames",
        "checkpoint",
        "config",
        "current_frame_id",
        "graph",
        "head_revision",
        "lease_generation",
        "ledger",
        "session_id",
    )

    def __init__(
        self,
        session_id: str,
        *,
        head_revision: int = 0,
        graph: SessionGraph | None = None,
        checkpoint: SessionCheckpoint | None = None,
        config: SessionConfig | None = None,
        agent_frames: list[AgentFrameRecord] | None = None,
        current_frame_id: str | None = None,
        ledger: list[TokenLedgerEntry] | None = None,
    ) -> None:
        self.session_id = session_id
        self.head_revision = head_revision
        self.graph = graph or SessionGraph()
        self.checkpoint = checkpoint or SessionCheckpoint()
        self.config = config or SessionConfig()
        initial = initial_frame_id(session_id)
        self.agent_frames = agent_frames or [
            AgentFrameRecord(frame_id=initial, session_id=session_id, reason="initial")
        ]
        self.current_frame_id = current_frame_id or self.agent_frames[-1].frame_id
        self.ledger = ledger or []
        self.lease_generation: int | None = None

    @classmethod
    def from_persisted(cls, persisted: PersistedSession) -> SessionState:
        """Hydrate from a store load."""
        return cls(
            persisted.session_id,
            head_revision=persisted.head_revision,
            graph=SessionGraph(persisted.nodes, persisted.leaf_node_id),
            checkpoint=persisted.checkpoint,
            config=persisted.config,
            agent_frames=list(persisted.agent_frames),
            current_frame_id=persisted.current_agent_frame_id,
            ledger=list(persisted.token_ledger),
        )

    @property
    def initial_frame_id(self) -> str:
        """This session's first frame id."""
        return initial_frame_id(self.session_id)

    @property
    def turn_index(self) -> int:
        """Physical turns committed so far."""
        return self.checkpoint.turn_index

    def prompt_history(self) -> list[Message]:
        """The current frame's committed messages (the base of the next prompt)."""
        return self.graph.frame_messages(self.current_frame_id, self.initial_frame_id)

    def read_view(self) -> SessionReadView:
        """The immutable committed projection."""
        messages = tuple(self.graph.visible_messages())
        return SessionReadView(
            session_id=self.session_id,
            revision=self.head_revision,
            turn_index=self.turn_index,
            messages=messages,
            current_agent_frame_id=self.current_frame_id,
            agent_frames=tuple(self.agent_frames),
            frame_messages=tuple(self.prompt_history()),
            token_usage=self.checkpoint.token_usage,
            last_prompt_usage=self.checkpoint.last_prompt_usage,
        )

    def add_usage(self, entries: list[TokenLedgerEntry]) -> None:
        """Merge committed usage into the ledger."""
        self.ledger = merge_ledger([*self.ledger, *entries])

    def with_checkpoint(self, **changes: object) -> SessionCheckpoint:
        """A copy of the checkpoint with changes."""
        return msgspec.structs.replace(self.checkpoint, **changes)

    def commit_delta(
        self,
        graph: GraphDelta,
        fence: LeaseFence,
        *,
        release_lease: bool = False,
        checkpoint: SessionCheckpoint | None = None,
        agent_frames: tuple[AgentFrameRecord, ...] | None = None,
        current_agent_frame_id: str | None = None,
        usage_deltas: tuple[TokenLedgerEntry, ...] = (),
    ) -> RuntimeCommit:
        """A commit of ``graph`` on top of this state, fenced by ``fence``.

        Session operations outside a turn (branching, seeding a frame, tool-state changes,
        plugin graph appends) all write the same shape: this state's checkpoint, config, frames
        and head revision unless told otherwise.
        """
        return RuntimeCommit(
            session_id=self.session_id,
            graph=graph,
            checkpoint=self.checkpoint if checkpoint is None else checkpoint,
            config=self.config,
            expected_head_revision=self.head_revision,
            lease=fence,
            release_lease=release_lease,
            agent_frames=tuple(self.agent_frames) if agent_frames is None else agent_frames,
            current_agent_frame_id=(
                self.current_frame_id if current_agent_frame_id is None else current_agent_frame_id
            ),
            usage_deltas=usage_deltas,
        )
