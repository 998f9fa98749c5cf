"""ToolCatalog: unique names, order, providers, with_/without."""

from collections.abc import Sequence

import pytest

from lash.tools import DuplicateToolError, Tool, ToolCatalog, tool


def make(name: str) -> Tool:
    @tool(name=name, description=f"{name} tool")
    def f() -> str:
        return name

    return f


class Group:
    def __init__(self, *names: str) -> None:
        self.names = list(names)

    def tools(self) -> Sequence[Tool]:
        return [make(n) for n in self.names]


def test_specs_follow_registration_order_across_providers() -> None:
    catalog = ToolCatalog([make("b"), Group("c", "a"), make("d")])
    assert [s.name for s in catalog.specs()] == ["b", "c", "a", "d"]
    assert catalog.names() == ("b", "c", "a", "d")
    assert len(catalog) == 4 and "a" in catalog and "z" not in catalog


def test_get_returns_the_member_or_none() -> None:
    lookup = make("lookup")
    catalog = ToolCatalog([lookup])
    assert catalog.get("lookup") is lookup
    assert catalog.get("missing") is None


def test_duplicate_names_are_a_clear_error() -> None:
    with pytest.raises(DuplicateToolError, match="'a'") as info:
        ToolCatalog([make("a"), Group("b", "a")])
    assert info.value.name == "a"
    with pytest.raises(DuplicateToolError):
        ToolCatalog([make("a")]).with_(make("a"))


def test_with_and_without_return_new_catalogs() -> None:
    base = ToolCatalog([make("a"), make("b")])
    bigger = base.with_(make("c"), [make("d")])
    smaller = bigger.without("a", "nope")
    assert base.names() == ("a", "b")
    assert bigger.names() == ("a", "b", "c", "d")
    assert smaller.names() == ("b", "c", "d")
    assert smaller.get("a") is None


def test_hidden_duplicates_are_still_rejected() -> None:
    with pytest.raises(DuplicateToolError):
        ToolCatalog([make("a")]).without("a").with_(Group("b", "b"))


def test_refresh_rereads_providers() -> None:
    group = Group("a")
    catalog = ToolCatalog([group])
    group.names.append("b")
    assert catalog.names() == ("a",)
    assert catalog.refresh().names() == ("a", "b")


def test_non_tools_are_rejected() -> None:
    with pytest.raises(TypeError):
        ToolCatalog([object()])  # type: ignore[list-item]
