"""A throw-away PostgreSQL server for tests: ``with TemporaryPostgres() as pg: pg.dsn``.

It runs ``initdb`` on a temporary directory and ``pg_ctl start`` on a free loopback port,
with durability switched off (``fsync=off``: the data only has to survive a process crash,
never power loss) unless ``durable=True`` asks for PostgreSQL's own defaults (a benchmark
that claims durability must pay for the WAL flush). PostgreSQL refuses to run as root, so
as root the cluster is created and run as the ``postgres`` system user (via ``runuser``) in
a directory that user owns.

``LASH_POSTGRES_DSN``, when set, names an existing server instead; nothing is started then,
and :meth:`TemporaryPostgres.restart` is unavailable.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

__all__ = [
    "DSN_ENV",
    "PostgresUnavailable",
    "TemporaryPostgres",
    "find_postgres_bin",
]

DSN_ENV = "LASH_POSTGRES_DSN"
"""Environment variable naming an existing server to use instead of a temporary one."""

_SUPERUSER = "lash"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL binaries (or no way to run them) on this machine."""


def find_postgres_bin() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``, or ``None``."""
    found = shutil.which("initdb")
    if found is not None and shutil.which("pg_ctl") is not None:
        return Path(os.path.realpath(found)).parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        path = Path(candidate)
        if (path / "initdb").is_file() and (path / "pg_ctl").is_file():
            return path
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TemporaryPostgres:
    """A private PostgreSQL cluster for the lifetime of a ``with`` block.

    ``dsn`` connects as a superuser to database ``postgres``. :meth:`restart` stops the
    server (``immediate`` mode by default: like a crash) and starts it again on the same port.
    """

    def __init__(
        self, *, bin_dir: Path | None = None, use_env: bool = True, durable: bool = False
    ) -> None:
        self._env_dsn = os.environ.get(DSN_ENV) if use_env else None
        self._bin_dir = bin_dir
        self._durable = durable
        self._dir: Path | None = None
        self._port = 0
        self._run_as: str | None = None

    @property
    def external(self) -> bool:
        """Whether this wraps ``LASH_POSTGRES_DSN`` rather than a server it started."""
        return bool(self._env_dsn)

    @property
    def dsn(self) -> str:
        """Connection string for the superuser."""
        if self._env_dsn:
            return self._env_dsn
        if self._dir is None:
            raise RuntimeError("TemporaryPostgres is not started")
        return f"postgresql://{_SUPERUSER}@127.0.0.1:{self._port}/postgres"

    @property
    def data_dir(self) -> Path | None:
        """The cluster's data directory (``None`` for an external server)."""
        return None if self._dir is None else self._dir / "data"

    # --- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> TemporaryPostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Create and start the cluster (no-op for an external server)."""
        if self._env_dsn or self._dir is not None:
            return
        bin_dir = self._bin_dir or find_postgres_bin()
        if bin_dir is None or not (bin_dir / "initdb").is_file():
            raise PostgresUnavailable(
                f"PostgreSQL is not installed (no initdb/pg_ctl in {bin_dir}, on PATH or in "
                "/usr/lib/postgresql/*/bin); install Debian's 'postgresql' package or set "
                f"{DSN_ENV}"
            )
        self._bin_dir = bin_dir
        base = Path(tempfile.mkdtemp(prefix="lash-pg-"))
        self._dir = base
        try:
            if os.geteuid() == 0:
                try:
                    user = pwd.getpwnam("postgres")
                except KeyError as exc:
                    raise PostgresUnavailable(
                        "running as root needs a 'postgres' system user to run the server"
                    ) from exc
                os.chown(base, user.pw_uid, user.pw_gid)
                self._run_as = "postgres"
            self._port = _free_port()
            self._run(
                "initdb",
                "-D",
                str(base / "data"),
                "-U",
                _SUPERUSER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            )
            self._pg_ctl_start()
        except BaseException:
            self._remove()
            raise

    def _pg_ctl_start(self) -> None:
        assert self._dir is not None
        if self._durable:  # every commit waits for its WAL flush
            durability = ["-c fsync=on", "-c synchronous_commit=on", "-c full_page_writes=on"]
        else:
            durability = ["-c fsync=off", "-c full_page_writes=off"]
        options = " ".join(
            [
                "-c listen_addresses=127.0.0.1",
                f"-p {self._port}",
                f"-k {self._dir}",
                *durability,
                "-c max_connections=200",
            ]
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self._dir / "data"),
            "-l",
            str(self._dir / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``, ``smart`` or ``immediate``)."""
        if self._env_dsn or self._dir is None:
            return
        self._run("pg_ctl", "-D", str(self._dir / "data"), "-m", mode, "-w", "stop")

    def restart(self, mode: str = "immediate") -> None:
        """Stop the server and start it again on the same port."""
        if self._env_dsn:
            raise RuntimeError(f"cannot restart an external server ({DSN_ENV})")
        self.stop(mode)
        self._pg_ctl_start()

    def close(self) -> None:
        """Stop the server and delete its directory."""
        if self._dir is None:
            return
        with contextlib.suppress(subprocess.CalledProcessError, OSError):
            self.stop("immediate")
        self._remove()

    def log_text(self) -> str:
        """The server log so far (for failure messages)."""
        if self._dir is None:
            return ""
        try:
            return (self._dir / "server.log").read_text(errors="replace")
        except OSError:
            return ""

    # --- helpers -------------------------------------------------------------------------

    def _run(self, tool: str, *args: str) -> None:
        assert self._bin_dir is not None
        argv = [str(self._bin_dir / tool), *args]
        if self._run_as is not None:
            argv = ["runuser", "-u", self._run_as, "--", *argv]
        result = subprocess.run(
            argv, capture_output=True, text=True, check=False, timeout=120, cwd="/"
        )
        if result.returncode != 0:
            raise PostgresUnavailable(
                f"{tool} failed ({result.returncode}): {result.stderr.strip()}\n"
                f"{self.log_text()[-2000:]}"
            )

    def _remove(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
