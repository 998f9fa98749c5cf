"""SessionGraph: the append-only source of truth and the projections read from it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lash.types import (
    EventPayload,
    Message,
    MessagePayload,
    PluginPayload,
    SessionGraph,
    SessionNode,
    TextPart,
    decode,
    encode,
    initial_frame_id,
)

SESSION = "s"
INITIAL = initial_frame_id(SESSION)


def msg(message_id: str, text: str = "", *, role: str = "user", transient: bool = False) -> Message:
    return Message(
        id=message_id,
        role=role,  # type: ignore[arg-type]
        parts=(TextPart(text=text or message_id),),
        transient=transient,
    )


def node(
    node_id: str,
    parent: str | None = None,
    message: Message | None = None,
    *,
    frame: str | None = None,
) -> SessionNode:
    payload = MessagePayload(message=message) if message is not None else EventPayload(name="e")
    return SessionNode(
        node_id=node_id, parent_node_id=parent, payload=payload, agent_frame_id=frame
    )


def chain(*ids: str) -> SessionGraph:
    """A linear graph of message nodes ``ids[0] <- ids[1] <- ...``."""
    graph = SessionGraph()
    parent: str | None = None
    for node_id in ids:
        graph.append(node(node_id, parent, msg(f"m-{node_id}")))
        parent = node_id
    return graph


def ids(nodes: list[SessionNode]) -> list[str]:
    return [n.node_id for n in nodes]


def texts(messages: list[Message]) -> list[str]:
    return [m.text for m in messages]


# --- append-only ------------------------------------------------------------------------


def test_empty_graph() -> None:
    graph = SessionGraph()
    assert len(graph) == 0
    assert graph.leaf_node_id is None
    assert graph.active_path() == []
    assert graph.nodes() == []
    assert graph.frame_messages(INITIAL, INITIAL) == []


def test_append_sets_the_leaf_and_keeps_insertion_order() -> None:
    graph = chain("a", "b", "c")
    assert len(graph) == 3
    assert graph.leaf_node_id == "c"
    assert ids(graph.nodes()) == ["a", "b", "c"]
    assert "b" in graph and "z" not in graph
    got = graph.get("b")
    assert got is not None and got.message is not None and got.message.id == "m-b"
    assert graph.get("z") is None


def test_duplicate_node_id_is_rejected_and_nothing_changes() -> None:
    graph = chain("a", "b")
    with pytest.raises(ValueError, match="already has node 'a'"):
        graph.append(node("a", "b", msg("other")))
    assert ids(graph.nodes()) == ["a", "b"]
    assert graph.leaf_node_id == "b"
    original = graph.get("a")
    assert original is not None and original.message is not None
    assert original.message.id == "m-a"


def test_missing_parent_is_rejected_and_nothing_changes() -> None:
    graph = chain("a")
    with pytest.raises(ValueError, match="parent 'ghost' of 'b' is missing"):
        graph.append(node("b", "ghost", msg("x")))
    assert ids(graph.nodes()) == ["a"]
    assert graph.leaf_node_id == "a"
    assert "b" not in graph


def test_several_roots_are_allowed() -> None:
    graph = chain("a")
    graph.append(node("r2", None, msg("second root")))
    assert graph.leaf_node_id == "r2"
    assert ids(graph.active_path()) == ["r2"]


# --- active path and branching ------------------------------------------------------------


def test_active_path_runs_from_root_to_leaf() -> None:
    graph = chain("a", "b", "c")
    assert ids(graph.active_path()) == ["a", "b", "c"]
    assert [m.id for _, m in graph.iter_active_messages()] == ["m-a", "m-b", "m-c"]


def test_branch_to_moves_the_leaf_and_keeps_history() -> None:
    graph = chain("a", "b", "c")
    graph.branch_to("a")
    assert graph.leaf_node_id == "a"
    assert ids(graph.active_path()) == ["a"]
    # the abandoned branch stays stored
    assert ids(graph.nodes()) == ["a", "b", "c"]
    # a new branch grows from the moved leaf
    graph.append(node("d", "a", msg("m-d")))
    assert ids(graph.active_path()) == ["a", "d"]
    graph.branch_to("c")
    assert ids(graph.active_path()) == ["a", "b", "c"]


def test_branch_to_a_missing_node_is_rejected() -> None:
    graph = chain("a", "b")
    with pytest.raises(KeyError):
        graph.branch_to("ghost")
    assert graph.leaf_node_id == "b"


def test_active_path_skips_off_path_nodes() -> None:
    graph = chain("a", "b")
    graph.append(node("x", "a", msg("side")))  # a sibling of b, now the leaf
    graph.branch_to("b")
    assert ids(graph.active_path()) == ["a", "b"]
    assert "side" not in texts([m for _, m in graph.iter_active_messages()])


def test_event_nodes_are_on_the_path_but_not_messages() -> None:
    graph = chain("a")
    graph.append(node("e", "a"))
    graph.append(
        SessionNode(node_id="p", parent_node_id="e", payload=PluginPayload(plugin_type="mem"))
    )
    graph.append(node("b", "p", msg("m-b")))
    assert ids(graph.active_path()) == ["a", "e", "p", "b"]
    assert [m.id for _, m in graph.iter_active_messages()] == ["m-a", "m-b"]


def test_loaded_graph_defaults_the_leaf_to_the_last_node() -> None:
    nodes = chain("a", "b", "c").nodes()
    graph = SessionGraph(nodes)
    assert graph.leaf_node_id == "c"
    assert ids(graph.active_path()) == ["a", "b", "c"]


def test_loaded_graph_keeps_a_valid_leaf() -> None:
    graph = SessionGraph(chain("a", "b", "c").nodes(), leaf_node_id="b")
    assert graph.leaf_node_id == "b"
    assert ids(graph.active_path()) == ["a", "b"]


def test_a_leaf_pointing_at_a_missing_node_repairs_to_the_newest_message_node() -> None:
    nodes = [
        node("a", None, msg("m-a")),
        node("b", "a", msg("m-b")),
        node("e1", "b"),  # newer, but an event: not a valid repair target
        node("e2", "e1"),
    ]
    graph = SessionGraph(nodes, leaf_node_id="vanished")
    assert graph.leaf_node_id == "b"
    assert ids(graph.active_path()) == ["a", "b"]


def test_leaf_repair_without_any_message_node_falls_back_to_the_newest_node() -> None:
    graph = SessionGraph([node("e1"), node("e2", "e1")], leaf_node_id="vanished")
    assert graph.leaf_node_id == "e2"


def test_leaf_repair_on_an_empty_graph() -> None:
    graph = SessionGraph([], leaf_node_id="vanished")
    assert graph.leaf_node_id is None
    assert graph.active_path() == []


def test_a_parent_cycle_in_loaded_nodes_does_not_hang() -> None:
    # a corrupt row set must not loop forever
    graph = SessionGraph([node("a", "b", msg("m-a")), node("b", "a", msg("m-b"))], "b")
    assert ids(graph.active_path()) == ["a", "b"]


def test_a_dangling_parent_in_loaded_nodes_ends_the_path() -> None:
    # ActivePathOnly residency may load a node whose ancestors are not resident
    graph = SessionGraph([node("b", "not-loaded", msg("m-b"))])
    assert ids(graph.active_path()) == ["b"]


# --- frame-scoped read model -------------------------------------------------------------


def test_frame_messages_scope_by_frame() -> None:
    graph = SessionGraph()
    graph.append(node("u0", None, msg("unscoped")))
    graph.append(node("i1", "u0", msg("initial"), frame=INITIAL))
    graph.append(node("f1", "i1", msg("frame two"), frame="f-2"))
    graph.append(node("f2", "f1", msg("frame two again"), frame="f-2"))
    graph.append(node("g1", "f2", msg("frame three"), frame="f-3"))
    assert texts(graph.frame_messages(INITIAL, INITIAL)) == ["unscoped", "initial"]
    assert texts(graph.frame_messages("f-2", INITIAL)) == ["frame two", "frame two again"]
    assert texts(graph.frame_messages("f-3", INITIAL)) == ["frame three"]
    assert graph.frame_messages("f-unknown", INITIAL) == []


def test_unscoped_nodes_count_only_in_the_initial_frame() -> None:
    graph = SessionGraph()
    graph.append(node("u0", None, msg("legacy")))
    graph.append(node("f1", "u0", msg("scoped"), frame="f-2"))
    assert texts(graph.frame_messages("f-2", INITIAL)) == ["scoped"]
    assert texts(graph.frame_messages(INITIAL, INITIAL)) == ["legacy"]
    # which frame is initial is the caller's fact, not a naming convention
    assert texts(graph.frame_messages("f-2", "f-2")) == ["legacy", "scoped"]


def test_transient_messages_are_excluded() -> None:
    graph = SessionGraph()
    graph.append(node("a", None, msg("kept")))
    graph.append(node("b", "a", msg("hint", transient=True)))
    graph.append(node("c", "b", msg("also kept")))
    assert texts(graph.frame_messages(INITIAL, INITIAL)) == ["kept", "also kept"]
    # the transient message is still stored and on the active path
    assert [m.text for _, m in graph.iter_active_messages()] == ["kept", "hint", "also kept"]


def test_messages_are_deduplicated_by_id() -> None:
    graph = SessionGraph()
    graph.append(node("a", None, msg("m-1", "first copy")))
    graph.append(node("b", "a", msg("m-2", "other")))
    graph.append(node("c", "b", msg("m-1", "second copy")))
    assert texts(graph.frame_messages(INITIAL, INITIAL)) == ["first copy", "other"]


def test_frame_messages_follow_the_active_path_only() -> None:
    graph = chain("a", "b")
    graph.append(node("c", "a", msg("m-c")))
    assert [m.id for m in graph.frame_messages(INITIAL, INITIAL)] == ["m-a", "m-c"]
    graph.branch_to("b")
    assert [m.id for m in graph.frame_messages(INITIAL, INITIAL)] == ["m-a", "m-b"]


def test_initial_frame_id() -> None:
    assert initial_frame_id("chat-1") == "chat-1:frame:initial"


# --- commit bookkeeping ------------------------------------------------------------------


def test_uncommitted_tracks_the_new_tail() -> None:
    graph = chain("a", "b")
    assert ids(graph.uncommitted()) == ["a", "b"]
    graph.mark_committed()
    assert graph.uncommitted() == []
    graph.append(node("c", "b", msg("m-c")))
    graph.append(node("d", "c", msg("m-d")))
    assert ids(graph.uncommitted()) == ["c", "d"]
    graph.mark_committed()
    assert graph.uncommitted() == []
    assert ids(graph.nodes()) == ["a", "b", "c", "d"]


def test_a_loaded_graph_starts_fully_committed() -> None:
    graph = SessionGraph(chain("a", "b").nodes())
    assert graph.uncommitted() == []
    graph.append(node("c", "b", msg("m-c")))
    assert ids(graph.uncommitted()) == ["c"]


def test_branching_is_not_an_uncommitted_node() -> None:
    graph = SessionGraph(chain("a", "b").nodes())
    graph.branch_to("a")
    assert graph.uncommitted() == []


def test_a_rejected_append_leaves_uncommitted_alone() -> None:
    graph = SessionGraph(chain("a").nodes())
    with pytest.raises(ValueError):
        graph.append(node("a", None, msg("dup")))
    with pytest.raises(ValueError):
        graph.append(node("b", "ghost", msg("orphan")))
    assert graph.uncommitted() == []


def test_nodes_round_trip_and_rebuild_the_same_graph() -> None:
    graph = chain("a", "b", "c")
    graph.branch_to("b")
    stored = [decode(encode(n), type=SessionNode) for n in graph.nodes()]
    rebuilt = SessionGraph(stored, graph.leaf_node_id)
    assert rebuilt.nodes() == graph.nodes()
    assert ids(rebuilt.active_path()) == ["a", "b"]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=25))
def test_random_trees_keep_the_path_invariants(parent_picks: list[int]) -> None:
    """Random trees: every path starts at a root, ends at the leaf, and follows parents."""
    graph = SessionGraph()
    graph.append(node("n0", None, msg("m0")))
    for i, pick in enumerate(parent_picks, start=1):
        existing = graph.nodes()
        parent = existing[pick % len(existing)].node_id
        graph.append(node(f"n{i}", parent, msg(f"m{i}")))
        path = graph.active_path()
        assert path[0].parent_node_id is None
        assert path[-1].node_id == f"n{i}" == graph.leaf_node_id
        for older, newer in zip(path, path[1:], strict=False):
            assert newer.parent_node_id == older.node_id
        assert [m.id for m in graph.frame_messages(INITIAL, INITIAL)] == [
            n.message.id for n in path if n.message is not None
        ]
    assert len(graph) == len(parent_picks) + 1
    assert len(graph.uncommitted()) == len(graph)
