"""Private, throwaway Redis and PostgreSQL servers, and databases on a shared server."""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import redis
from psycopg import sql

from app import processes
from harness.ports import free_port, port_open, wait_port_closed

__all__ = [
    "PostgresServer",
    "RedisServer",
    "create_database",
    "drop_database",
]

PG_OS_USER = "postgres"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
LOG_TAIL_LINES = 40
# sun_path is 108 bytes on Linux; longer socket paths make the postmaster refuse to start.
MAX_UNIX_SOCKET_PATH = 100


class _Stoppable(Protocol):
    def stop(self) -> None: ...


# Safety net: servers still running when the interpreter exits (e.g. a fixture that
# never reached its teardown) are stopped rather than orphaned.
_LIVE: dict[int, _Stoppable] = {}


@atexit.register
def _stop_all() -> None:
    """Stop every server this process started and did not stop."""
    for server in list(_LIVE.values()):
        with contextlib.suppress(Exception):
            server.stop()


def _log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """Last lines of a log file, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


def _libpq_url(sqlalchemy_url: str) -> str:
    """Turn "postgresql+psycopg://..." into a libpq URL psycopg accepts."""
    parts = urlsplit(sqlalchemy_url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in ("postgresql", "postgres"):
        raise ValueError(f"not a PostgreSQL URL: {sqlalchemy_url!r}")
    return urlunsplit(parts._replace(scheme="postgresql"))


def _with_database(url: str, name: str) -> str:
    """The same URL pointing at another database."""
    return urlunsplit(urlsplit(url)._replace(path="/" + quote(name, safe="")))


def create_database(admin_url: str, name: str, *, template: str | None = None) -> str:
    """CREATE DATABASE name on the server behind admin_url, a copy of template if given;
    return its SQLAlchemy URL."""
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        statement = sql.SQL("{} TEMPLATE {}").format(statement, sql.Identifier(template))
    with psycopg.connect(_libpq_url(admin_url), autocommit=True) as conn:
        conn.execute(statement)
    return _with_database(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    """Terminate the connections to database name, then DROP DATABASE IF EXISTS."""
    with psycopg.connect(_libpq_url(admin_url), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        drop = sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name))
        # WITH (FORCE) (PostgreSQL 13+) also beats connections opened after the terminate.
        if conn.info.server_version >= 130000:
            drop = sql.SQL("{} WITH (FORCE)").format(drop)
        conn.execute(drop)


class RedisServer:
    """A private redis-server on a free loopback port, for tests that stop or flush the broker."""

    def __init__(self, workdir: Path) -> None:
        """Prepare (but do not start) a server keeping its files in workdir."""
        self.workdir = Path(workdir)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log_path = self.workdir / "redis.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._binary = shutil.which("redis-server")

    def start(self) -> None:
        """Start redis-server (again, on the same port) and return once PING answers."""
        if self._proc is not None and self._proc.poll() is None:
            return
        if self._binary is None:
            raise RuntimeError("redis-server not found on PATH")
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Fail fast and clearly if something else grabbed the port since __init__/stop().
        if port_open("127.0.0.1", self.port):
            raise RuntimeError(f"port {self.port} is already in use; cannot start Redis there")
        cmd = [
            self._binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
            "--daemonize", "no",
        ]  # fmt: skip
        self._proc = processes.spawn(cmd, log=self.log_path)
        _LIVE[id(self)] = self
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        """Poll PING until it answers, the process dies or START_TIMEOUT passes."""
        assert self._proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1.0)
        try:
            while True:
                if self._proc.poll() is not None:
                    raise RuntimeError(
                        f"redis-server exited with {self._proc.returncode}; log tail:\n"
                        + _log_tail(self.log_path)
                    )
                with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
                    if client.ping():
                        return
                if time.monotonic() >= deadline:
                    raise RuntimeError(
                        f"redis-server on port {self.port} not answering PING after "
                        f"{START_TIMEOUT:.0f}s; log tail:\n" + _log_tail(self.log_path)
                    )
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        """Stop redis-server and return once its port is closed; no-op if not running."""
        proc, self._proc = self._proc, None
        _LIVE.pop(id(self), None)
        if proc is None:
            return
        processes.stop([proc], timeout=STOP_TIMEOUT)
        wait_port_closed("127.0.0.1", self.port, STOP_TIMEOUT)

    def flushall(self) -> None:
        """Delete every key in every database."""
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5.0)
        try:
            client.flushall()
        finally:
            client.close()

    def __enter__(self) -> Self:
        """Start the server."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()


def _pg_bindir() -> Path:
    """Directory holding the real initdb/pg_ctl/postgres binaries."""
    candidates: list[Path] = []
    if env := os.environ.get("PG_BINDIR"):
        candidates.append(Path(env))
    # Prefer the versioned Debian layout: the PATH entries may be pg_wrapper scripts
    # (postgresql-common) that pick a cluster rather than run the binary directly.
    versioned = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(versioned, key=lambda p: _version_key(p.parent.name), reverse=True)
    if pg_config := shutil.which("pg_config"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            )
            candidates.append(Path(out.stdout.strip()))
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).resolve().parent)
    for bindir in candidates:
        if all(os.access(bindir / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    raise RuntimeError(f"no PostgreSQL bin dir with initdb, pg_ctl and postgres in {candidates}")


def _version_key(name: str) -> tuple[int, ...]:
    """Sort key for version-like directory names such as "15" or "9.6"."""
    try:
        return tuple(int(part) for part in name.split("."))
    except ValueError:
        return (-1,)


class PostgresServer:
    """A private PostgreSQL cluster (initdb in a temp dir) on a free loopback port."""

    def __init__(self, workdir: Path) -> None:
        """Prepare (but do not start) a cluster living under workdir."""
        self.workdir = Path(workdir)
        self.port = free_port()
        self.data_dir = self.workdir / "data"
        self.socket_dir = self.workdir / "sock"
        self.log_path = self.workdir / "postgres.log"
        self._ctl_log_path = self.workdir / "pg_ctl.log"
        self._bindir = _pg_bindir()
        self._running = False
        # initdb and postgres refuse to run as root, so when we are root every cluster
        # command runs as the unprivileged OS user; otherwise as ourselves.
        self._as_user: pwd.struct_passwd | None = (
            pwd.getpwnam(PG_OS_USER) if os.geteuid() == 0 else None
        )

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL of database on this server."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{quote(database, safe='')}"

    def _run(self, tool: str, args: Sequence[str], timeout: float = START_TIMEOUT) -> None:
        """Run a PostgreSQL tool as the cluster owner, raising with log tails on failure."""
        cmd = [str(self._bindir / tool), *args]
        if self._as_user is not None:
            cmd = ["runuser", "-u", self._as_user.pw_name, "--", *cmd]
        # Output goes to a file, not a pipe: pg_ctl's postmaster could inherit a pipe and
        # keep it open, making subprocess.run hang until the server stops.
        with self._ctl_log_path.open("ab") as out:
            out.write(f"$ {' '.join(cmd)}\n".encode())
            out.flush()
            try:
                result = subprocess.run(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=self.workdir,  # the postgres user may not be able to enter our cwd
                    env={**os.environ, "LC_ALL": "C", "PGTZ": "UTC"},
                    timeout=timeout,
                    check=False,
                )
                code: int | str = result.returncode
            except subprocess.TimeoutExpired:
                code = f"timeout after {timeout:.0f}s"
        if code != 0:
            raise RuntimeError(
                f"{tool} {' '.join(args)} failed ({code}).\n"
                f"--- {self._ctl_log_path} ---\n{_log_tail(self._ctl_log_path)}\n"
                f"--- {self.log_path} ---\n{_log_tail(self.log_path)}"
            )

    def _prepare_workdir(self) -> None:
        """Create workdir owned by the cluster user, with traversable parents."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self._as_user is None:
            return
        uid, gid = self._as_user.pw_uid, self._as_user.pw_gid
        os.chown(self.workdir, uid, gid)
        self.workdir.chmod(0o700)
        # pytest's tmp_path sits under 0700 root dirs (/tmp/pytest-of-root/...): grant
        # search-only (o+x, not read) so the postgres user can reach its own directory.
        for parent in self.workdir.resolve().parents:
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                parent.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)

    def _socket_setting(self) -> str:
        """Value for unix_socket_directories: inside workdir, or none if the path is too long."""
        if len(str(self.socket_dir / f".s.PGSQL.{self.port}")) > MAX_UNIX_SOCKET_PATH:
            return ""  # TCP only; pg_ctl -w watches postmaster.pid, so it still works
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        if self._as_user is not None:
            os.chown(self.socket_dir, self._as_user.pw_uid, self._as_user.pw_gid)
        return str(self.socket_dir)

    def _initdb(self) -> None:
        """Create the cluster and append the settings that make it fast and private."""
        self._run(
            "initdb",
            [
                "-D", str(self.data_dir),
                "-U", "postgres",
                "-A", "trust",
                "-E", "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
        )  # fmt: skip
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": self._socket_setting(),
            # Throwaway data: durability only costs time.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "16MB",
            "max_connections": "100",
            "logging_collector": "off",
            "timezone": "UTC",
        }
        lines = "".join(f"{key} = '{value}'\n" for key, value in settings.items())
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# harness/services.py\n" + lines)

    def start(self) -> None:
        """initdb on first start, then pg_ctl start; return once it accepts connections."""
        if self._running:
            return
        self._prepare_workdir()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        if port_open("127.0.0.1", self.port):
            raise RuntimeError(f"port {self.port} is already in use; cannot start PostgreSQL")
        _LIVE[id(self)] = self
        self._running = True
        try:
            self._run(
                "pg_ctl",
                [
                    "start",
                    "-D", str(self.data_dir),
                    "-l", str(self.log_path),
                    "-w", "-t", str(int(START_TIMEOUT)),
                ],
                timeout=START_TIMEOUT + 10,
            )  # fmt: skip
            self._wait_accepting()
        except BaseException:
            self.stop()
            raise

    def _wait_accepting(self) -> None:
        """Poll a real connection until the server accepts it."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with psycopg.connect(_libpq_url(self.url()), connect_timeout=2):
                    return
            except psycopg.OperationalError as exc:
                if time.monotonic() >= deadline:
                    raise RuntimeError(
                        f"PostgreSQL on port {self.port} not accepting connections: {exc}\n"
                        f"log tail:\n{_log_tail(self.log_path)}"
                    ) from exc
                time.sleep(0.05)

    def stop(self) -> None:
        """pg_ctl stop -m fast and wait for the port to close; no-op if not running."""
        if not self._running:
            return
        self._running = False
        _LIVE.pop(id(self), None)
        if (self.data_dir / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", ["stop", "-D", str(self.data_dir), "-m", "fast", "-w"])
            except RuntimeError:
                self._kill_postmaster()
        wait_port_closed("127.0.0.1", self.port, STOP_TIMEOUT)

    def _kill_postmaster(self) -> None:
        """Last resort when pg_ctl stop fails: SIGQUIT (immediate shutdown), then SIGKILL."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGQUIT)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                os.kill(pid, 0)
                time.sleep(0.05)
            os.kill(pid, signal.SIGKILL)

    def create_database(self, name: str) -> str:
        """CREATE DATABASE name on this server; return its SQLAlchemy URL."""
        return create_database(self.url(), name)

    def __enter__(self) -> Self:
        """Start the server."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()
