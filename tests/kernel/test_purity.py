"""``lash.kernel`` and ``lash.types`` import without any I/O or concurrency machinery.

A child interpreter installs a ``sys.meta_path`` finder that refuses the I/O and concurrency
modules, then imports the sans-IO core and runs a machine step.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

BLOCKED = ("asyncio", "socket", "ssl", "sqlite3", "threading", "selectors")

_PROBE = textwrap.dedent(
    """
    import sys

    BLOCKED = {blocked!r}

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"blocked import of {{name}} in the sans-IO core")
            return None

    # A module imported by the interpreter itself before this line would not be caught by
    # the finder, so drop any cached copy first.
    for name in list(sys.modules):
        if name.split(".")[0] in BLOCKED:
            del sys.modules[name]
    sys.meta_path.insert(0, Blocker())

    # The real package: its facade loads lazily, so this must stay pure too.
    import lash

    import lash.kernel
    import lash.types
    from lash.kernel import TurnMachine, MachineConfig

    leaked = sorted(n for n in sys.modules if n.split(".")[0] in BLOCKED)
    assert not leaked, leaked
    m = TurnMachine(MachineConfig(session_id="s", turn_id="t", turn_index=0, model="m"))
    assert m.start()
    print("pure")
    """
)


def test_kernel_and_types_import_without_io_modules() -> None:
    code = _PROBE.format(blocked=BLOCKED)
    proc = subprocess.run(
        [sys.executable, "-I", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=None,
        cwd=None,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "pure"


def test_the_blocker_really_blocks() -> None:
    code = _PROBE.format(blocked=BLOCKED).replace("import lash.kernel\n", "import asyncio\n", 1)
    proc = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode != 0
    assert "blocked import of asyncio" in proc.stderr
