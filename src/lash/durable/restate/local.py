"""A throw-away local Restate server for tests and demos (loopback only, temporary data).

The server binary comes from the npm package ``@restatedev/restate-server``, which
``scripts/setup.sh`` installs into the project-local ``.restate/`` directory; set
``LASH_RESTATE_SERVER`` to use another binary. Only the standard library is used here, so
the helper works wherever the ``restate`` extra does.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["LocalRestateServer", "RestateHttpError", "find_restate_server", "free_port"]

_ARCH = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}


class RestateHttpError(RuntimeError):
    """A non-2xx answer from the Restate admin or ingress API."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


def find_restate_server(root: Path | None = None) -> Path | None:
    """The ``restate-server`` binary: ``$LASH_RESTATE_SERVER``, ``.restate/``, then ``PATH``."""
    explicit = os.environ.get("LASH_RESTATE_SERVER")
    if explicit:
        return Path(explicit) if Path(explicit).is_file() else None
    base = root or Path(__file__).resolve().parents[4]
    system = platform.system().lower()
    arch = _ARCH.get(platform.machine().lower(), platform.machine().lower())
    bundled = (
        base
        / ".restate/node_modules/@restatedev"
        / f"restate-server-{system}-{arch}"
        / "bin/restate-server"
    )
    if bundled.is_file():
        return bundled
    found = shutil.which("restate-server")
    return Path(found) if found else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


_CONFIG = """\
cluster-name = "lash-local"
node-name = "lash-local"
base-dir = "{base}"
bind-ip = "127.0.0.1"
advertised-host = "127.0.0.1"
bind-port = {node_port}
listen-mode = "tcp"
disable-telemetry = true
default-num-partitions = 2
rocksdb-total-memory-size = "256 MiB"
log-filter = "warn,restate=warn"
log-disable-ansi-codes = true

[default-retry-policy]
initial-interval = "100ms"
exponentiation-factor = 1.5
max-attempts = 200
max-interval = "500ms"
on-max-attempts = "kill"

[admin]
bind-port = {admin_port}
disable-web-ui = true

[ingress]
bind-port = {ingress_port}
"""


class LocalRestateServer:
    """Starts ``restate-server`` on free loopback ports with its data in a temporary dir."""

    def __init__(self, binary: Path, *, startup_timeout_s: float = 60.0) -> None:
        self.binary = binary
        self.startup_timeout_s = startup_timeout_s
        self.admin_port = free_port()
        self.ingress_port = free_port()
        self.node_port = free_port()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    @property
    def admin_url(self) -> str:
        """The admin API base URL."""
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def ingress_url(self) -> str:
        """The ingress base URL."""
        return f"http://127.0.0.1:{self.ingress_port}"

    def start(self) -> LocalRestateServer:
        """Start the server and wait until admin and ingress answer."""
        self._tmp = tempfile.TemporaryDirectory(prefix="lash-restate-")
        tmp = Path(self._tmp.name)
        config = tmp / "restate.toml"
        config.write_text(
            _CONFIG.format(
                base=tmp / "data",
                node_port=self.node_port,
                admin_port=self.admin_port,
                ingress_port=self.ingress_port,
            )
        )
        self.log_path = tmp / "restate.log"
        return self._launch(config)

    def restart(self) -> LocalRestateServer:
        """Stop the server process and start it again on the same ports and data dir."""
        if self._tmp is None:
            raise RuntimeError("the server was never started")
        self._terminate()
        self._launch(Path(self._tmp.name) / "restate.toml")
        # health answers before the partitions are led again; wait until they serve queries
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            try:
                self.query("SELECT id FROM sys_invocation LIMIT 1")
            except (RestateHttpError, urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
            else:
                return self

    def _launch(self, config: Path) -> LocalRestateServer:
        assert self.log_path is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("RESTATE_")}
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [str(self.binary), "--no-logo", "--config-file", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"restate-server exited early:\n{self.log_tail()}")
            if self._ok(f"{self.admin_url}/health") and self._ok(
                f"{self.ingress_url}/restate/health"
            ):
                return self
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"restate-server did not become healthy:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server log (for failure messages)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the server and delete its data."""
        self._terminate()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def _terminate(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=15)
        self._proc = None

    def __enter__(self) -> LocalRestateServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- HTTP -----------------------------------------------------------------------------

    @staticmethod
    def _ok(url: str) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                return 200 <= int(resp.status) < 300
        except (urllib.error.URLError, OSError):
            return False

    @staticmethod
    def request(method: str, url: str, body: Any = None, *, timeout_s: float = 30.0) -> Any:
        """One JSON request; a non-2xx status raises :class:`RestateHttpError`."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("accept", "application/json")
        if data is not None:
            req.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as err:
            raise RestateHttpError(err.code, err.read().decode(errors="replace")) from err
        return json.loads(raw) if raw.strip() else None

    def register(self, uri: str) -> Any:
        """Register (or re-register) a deployment at ``uri``."""
        return self.request("POST", f"{self.admin_url}/deployments", {"uri": uri, "force": True})

    def send(self, service: str, key: str, handler: str, body: Any) -> Any:
        """Submit an invocation without waiting for it (``.../send``)."""
        return self.request("POST", f"{self.ingress_url}/{service}/{key}/{handler}/send", body)

    def call(self, service: str, key: str, handler: str, body: Any) -> Any:
        """Call a handler and wait for its answer."""
        return self.request("POST", f"{self.ingress_url}/{service}/{key}/{handler}", body)

    def query(self, sql: str) -> list[dict[str, Any]]:
        """Rows of an admin SQL query over Restate's introspection tables."""
        answer = self.request("POST", f"{self.admin_url}/query", {"query": sql})
        rows: list[dict[str, Any]] = (answer or {}).get("rows", [])
        return rows

    def kill_invocation(self, invocation_id: str) -> None:
        """Kill an invocation (break-glass; used to clean up after a test)."""
        self.request("PATCH", f"{self.admin_url}/invocations/{invocation_id}/kill")

    def attach_workflow(self, service: str, key: str, *, timeout_s: float = 60.0) -> Any:
        """Wait for a workflow's ``run`` result."""
        url = f"{self.ingress_url}/restate/workflow/{service}/{key}/attach"
        return self.request("GET", url, timeout_s=timeout_s)
