"""``artifact_store`` (persistence.md §7.6) over the process-env store."""

from __future__ import annotations

from lash.stores.base import ProcessEnvStore
from lash.testing.conformance._harness import StoreHarness, Suite

SUITE = Suite("artifact_store")
case = SUITE.case

_REF = "process-env:sha256:" + "ab" * 32


@case(requires={"process_envs"}, reason="needs the backend's process-env store")
async def process_execution_env_store_reports_declared_tier(h: StoreHarness) -> None:
    """The env store reports the declared tier."""
    envs = await h.process_envs()
    assert isinstance(envs, ProcessEnvStore)
    assert envs.tier is h.tier


@case(requires={"process_envs"}, reason="needs the backend's process-env store")
async def process_env_round_trips(h: StoreHarness) -> None:
    """A missing env is ``None``; a stored one comes back byte for byte."""
    envs = await h.process_envs()
    assert await envs.get_env(_REF) is None
    data = b'{"plugin_options":{},"policy":{"x":1}}\x00\xff'
    await envs.put_env(_REF, data)
    assert await envs.get_env(_REF) == data
    assert await envs.get_env(_REF + "0") is None


@case(requires={"process_envs"}, reason="needs the backend's process-env store")
async def process_env_overwrite(h: StoreHarness) -> None:
    """A second put under the same ref replaces the bytes."""
    envs = await h.process_envs()
    await envs.put_env(_REF, b"first")
    await envs.put_env(_REF, b"second")
    assert await envs.get_env(_REF) == b"second"


@case(requires={"process_envs_reopen"}, reason="only durable env stores reopen")
async def process_env_survives_reopen(h: StoreHarness) -> None:
    """Envs are visible through a second handle."""
    envs = await h.process_envs()
    await envs.put_env(_REF, b"kept")
    again = await h.reopen_process_envs(envs)
    assert await again.get_env(_REF) == b"kept"
