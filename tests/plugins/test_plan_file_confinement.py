"""Plan mode confines ``edit``/``write`` to the plan file without following symlinks: a plan
file, ``.lash`` or ``plans`` that is a symlink never makes another file writable, and the
template is never seeded through one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lash.plugins.plan_file import (
    PLAN_TEMPLATE,
    PlanFileUnsafe,
    plan_file_path,
    read_plan_report,
    seed_plan_file,
    unsafe_plan_file,
)
from lash.plugins.plan_mode import PlanMode
from lash.types import ToolCallPart


def _planning(workspace: Path) -> PlanMode:
    mode = PlanMode(workspace=workspace)
    mode._session_id = "s1"
    mode.state = {"enabled": True, "generation": 0, "plan": []}
    return mode


def _write(path: str) -> ToolCallPart:
    return ToolCallPart(id="c", name="write", arguments={"path": path, "content": "x"})


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("print('hi')\n")
    return root.resolve()


def test_symlinked_plan_file_does_not_unlock_its_target(workspace: Path) -> None:
    mode = _planning(workspace)
    plan = mode.plan_file
    assert plan is not None
    plan.parent.mkdir(parents=True)
    os.symlink(workspace / "src" / "app.py", plan)
    assert mode._file_tool_blocked(_write("src/app.py")) is not None
    assert mode._file_tool_blocked(_write(str(workspace / "src" / "app.py"))) is not None
    assert "`.lash/plans/s1.md`" in (mode._file_tool_blocked(_write("src/app.py")) or "")
    # the plan path itself is refused too, since writing it would follow the link
    blocked = mode._file_tool_blocked(_write(".lash/plans/s1.md"))
    assert blocked is not None and "symlink" in blocked


def test_symlinked_lash_directory_is_refused(workspace: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "plans").mkdir(parents=True)
    os.symlink(elsewhere, workspace / ".lash")
    mode = _planning(workspace)
    blocked = mode._file_tool_blocked(_write(".lash/plans/s1.md"))
    assert blocked is not None and "symlink" in blocked
    with pytest.raises(PlanFileUnsafe):
        seed_plan_file(workspace / ".lash" / "plans" / "s1.md", root=workspace)
    assert not (elsewhere / "plans" / "s1.md").exists()
    # reading the plan in a turn logs and carries on: nothing is seeded outside the workspace
    assert mode.read_plan().content is None
    assert list((elsewhere / "plans").iterdir()) == []


def test_dangling_symlink_plan_file_is_not_seeded(workspace: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.md"
    plan = plan_file_path(workspace, "s1")
    plan.parent.mkdir(parents=True)
    os.symlink(outside, plan)
    with pytest.raises(PlanFileUnsafe):
        seed_plan_file(plan, root=workspace)
    with pytest.raises(PlanFileUnsafe):
        seed_plan_file(plan)  # without a root the file itself is still checked
    assert not outside.exists()


def test_symlinked_plan_file_content_is_not_read(workspace: Path) -> None:
    plan = plan_file_path(workspace, "s1")
    plan.parent.mkdir(parents=True)
    os.symlink(workspace / "src" / "app.py", plan)
    assert read_plan_report(plan, "p.md", root=workspace).content is None
    assert read_plan_report(plan, "p.md").content is None  # O_NOFOLLOW


def test_dotdot_through_a_symlinked_directory_is_refused(workspace: Path, tmp_path: Path) -> None:
    # `link/../.lash/plans/s1.md` normalises to the plan file, but the tool would resolve it
    # through `link` into another tree
    other = tmp_path / "other"
    (other / "inner").mkdir(parents=True)
    (other / ".lash" / "plans").mkdir(parents=True)
    os.symlink(other / "inner", workspace / "link")
    mode = _planning(workspace)
    mode.read_plan()
    assert mode._file_tool_blocked(_write("link/../.lash/plans/s1.md")) is not None


def test_plain_plan_file_is_seeded_and_writable(workspace: Path) -> None:
    mode = _planning(workspace)
    assert mode.read_plan().content == PLAN_TEMPLATE
    assert unsafe_plan_file(workspace, workspace / ".lash" / "plans" / "s1.md") is None
    assert mode._file_tool_blocked(_write(".lash/plans/s1.md")) is None
    assert mode._file_tool_blocked(_write("./.lash/x/../plans/s1.md")) is None
    assert mode._file_tool_blocked(_write(str(workspace / ".lash/plans/s1.md"))) is None
    assert mode._file_tool_blocked(_write("src/app.py")) is not None
    assert mode._file_tool_blocked(_write(".lash/plans/s1.md\x00")) is not None


def test_plan_file_that_is_a_directory_is_refused(workspace: Path) -> None:
    plan = plan_file_path(workspace, "s1")
    plan.mkdir(parents=True)
    with pytest.raises(PlanFileUnsafe):
        seed_plan_file(plan, root=workspace)
    assert unsafe_plan_file(workspace, workspace.parent / "x.md") is not None
