"""The store conformance kit: the executable contract every backend must pass.

A backend registers a :class:`StoreHarness` factory; :func:`conformance_params` pairs it with
every :class:`Case` of :data:`ALL_CASES` as ``pytest.param`` objects (ids
``"<backend>-<suite>-<case>"``), and :func:`run_case` runs one pair::

    @pytest.mark.parametrize(("factory", "case"), conformance_params({"mine": make_harness}))
    async def test_store_conformance(factory, case, tmp_path):
        await run_case(factory, case, tmp_path)
"""

from __future__ import annotations

try:  # pytest's assertion rewriting gives the suites' plain asserts readable failures
    import pytest as _pytest
except ImportError:  # pragma: no cover - the kit is usable without pytest installed
    pass
else:
    _pytest.register_assert_rewrite(
        "lash.testing.conformance.runtime_persistence",
        "lash.testing.conformance.runtime_persistence_ingress",
        "lash.testing.conformance.session_store_factory",
        "lash.testing.conformance.attachment_store",
        "lash.testing.conformance.artifact_store",
        "lash.testing.conformance._support",
    )

from lash.testing.conformance import (
    artifact_store,
    attachment_store,
    runtime_persistence,
    runtime_persistence_ingress,
    session_store_factory,
)
from lash.testing.conformance._harness import (
    CAPABILITIES,
    Case,
    CaseSkipped,
    HarnessFactory,
    StoreHarness,
    Suite,
    conformance_params,
    run_case,
)

__all__ = [
    "ALL_CASES",
    "ARTIFACT_STORE",
    "ATTACHMENT_STORE",
    "CAPABILITIES",
    "RUNTIME_PERSISTENCE",
    "SESSION_STORE_FACTORY",
    "Case",
    "CaseSkipped",
    "HarnessFactory",
    "StoreHarness",
    "Suite",
    "conformance_params",
    "run_case",
]

RUNTIME_PERSISTENCE: tuple[Case, ...] = (
    *runtime_persistence.SUITE.cases,
    *runtime_persistence_ingress.SUITE.cases,
)
SESSION_STORE_FACTORY: tuple[Case, ...] = tuple(session_store_factory.SUITE.cases)
ATTACHMENT_STORE: tuple[Case, ...] = tuple(attachment_store.SUITE.cases)
ARTIFACT_STORE: tuple[Case, ...] = tuple(artifact_store.SUITE.cases)
ALL_CASES: tuple[Case, ...] = (
    *RUNTIME_PERSISTENCE,
    *SESSION_STORE_FACTORY,
    *ATTACHMENT_STORE,
    *ARTIFACT_STORE,
)
