"""Every conformance case on every registered backend (ids: backend-suite-case)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lash.testing.conformance import ALL_CASES, Case, HarnessFactory, conformance_params, run_case

from .backends import BACKENDS


@pytest.mark.parametrize(("factory", "case"), conformance_params(BACKENDS, ALL_CASES))
async def test_store_conformance(factory: HarnessFactory, case: Case, tmp_path: Path) -> None:
    await run_case(factory, case, tmp_path)
