"""Private Debian Postfix instances (and an SMTP recorder behind them) for tests."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from harness.ports import LOOPBACK, free_port

POSTFIX = "/usr/sbin/postfix"
MAIL_OWNER = "postfix"  # Debian's mail_owner default; the package creates the user
_SMTP_SINK_CANDIDATES = ("/usr/sbin/smtp-sink", "/usr/lib/postfix/sbin/smtp-sink")
_INSTALL_HINT = "run scripts/ensure-postfix as root (apt-get install postfix)"

# Postfix's own services, minus pickup/local/virtual/pipe: mail only enters over
# SMTP and only leaves through the relayhost. chroot is "n" everywhere because a
# private instance has no chroot jail set up (Debian's default master.cf has one).
_MASTER_CF = """\
{listen} inet  n       -       n       -       -       smtpd
cleanup    unix  n       -       n       -       0       cleanup
qmgr       unix  n       -       n       300     1       qmgr
tlsmgr     unix  -       -       n       1000?   1       tlsmgr
rewrite    unix  -       -       n       -       -       trivial-rewrite
bounce     unix  -       -       n       -       0       bounce
defer      unix  -       -       n       -       0       bounce
trace      unix  -       -       n       -       0       bounce
verify     unix  -       -       n       -       1       verify
flush      unix  n       -       n       1000?   0       flush
proxymap   unix  -       -       n       -       -       proxymap
proxywrite unix  -       -       n       -       1       proxymap
smtp       unix  -       -       n       -       -       smtp
relay      unix  -       -       n       -       -       smtp
showq      unix  n       -       n       -       -       showq
error      unix  -       -       n       -       -       error
retry      unix  -       -       n       -       -       error
discard    unix  -       -       n       -       -       discard
anvil      unix  -       -       n       -       1       anvil
scache     unix  -       -       n       -       1       scache
postlog    unix-dgram n  -       n       -       1       postlogd
"""
# Only with local_domains: local(8), which bounces mail for a user the system lacks.
_LOCAL_CF = "local      unix  -       n       n       -       -       local\n"


def smtp_sink_path() -> str:
    """Return the path of Postfix's smtp-sink benchmark server, or raise if it is missing."""
    for candidate in _SMTP_SINK_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("smtp-sink")
    if found is not None:
        return found
    raise FileNotFoundError(
        f"Postfix's smtp-sink not found (looked in {', '.join(_SMTP_SINK_CANDIDATES)} "
        f"and PATH); it ships in Debian's postfix package: {_INSTALL_HINT}"
    )


@dataclass(frozen=True)
class RecordedMessage:
    """One message as the recorder received it over SMTP."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    mail_options: tuple[str, ...]
    rcpt_options: tuple[str, ...]
    smtputf8: bool
    content: bytes

    @property
    def original_content(self) -> bytes:
        """Return the content without the Received: header Postfix prepends when relaying."""
        if self.content[:9].lower() != b"received:":
            return self.content
        # The header may be folded: its continuation lines start with blanks.
        pos = self.content.find(b"\r\n")
        while pos != -1 and self.content[pos + 2 : pos + 3] in (b" ", b"\t"):
            pos = self.content.find(b"\r\n", pos + 2)
        return b"" if pos == -1 else self.content[pos + 2 :]


class _RecordingHandler:
    """aiosmtpd handler that stores every accepted message and wakes waiters."""

    def __init__(self) -> None:
        self.messages: list[RecordedMessage] = []
        self.changed = threading.Condition()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Record the envelope and raw bytes, then accept."""
        message = RecordedMessage(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            mail_options=tuple(envelope.mail_options),
            rcpt_options=tuple(envelope.rcpt_options),
            smtputf8=envelope.smtp_utf8,
            content=envelope.original_content or b"",
        )
        with self.changed:
            self.messages.append(message)
            self.changed.notify_all()
        return "250 2.0.0 Ok: recorded"


class Recorder:
    """An aiosmtpd server on 127.0.0.1 that keeps every message it is handed."""

    def __init__(self, *, smtputf8: bool = True) -> None:
        self.host = LOOPBACK
        self.port = free_port()
        self._handler = _RecordingHandler()
        self._controller = Controller(
            self._handler,
            hostname=self.host,
            port=self.port,
            enable_SMTPUTF8=smtputf8,
            server_hostname="recorder.test",
        )
        self._running = False

    @property
    def address(self) -> tuple[str, int]:
        """Return (host, port), the form PostfixRelay's relay_to takes."""
        return (self.host, self.port)

    @property
    def messages(self) -> list[RecordedMessage]:
        """Return a snapshot of the messages received so far."""
        with self._handler.changed:
            return list(self._handler.messages)

    def wait_for(self, count: int = 1, timeout: float = 15.0) -> list[RecordedMessage]:
        """Wait until at least `count` messages arrived and return them; raise on timeout."""
        deadline = time.monotonic() + timeout
        with self._handler.changed:
            while len(self._handler.messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"recorder got {len(self._handler.messages)} of {count} "
                        f"message(s) within {timeout}s"
                    )
                self._handler.changed.wait(remaining)
            return list(self._handler.messages)

    def clear(self) -> None:
        """Forget the messages received so far."""
        with self._handler.changed:
            self._handler.messages.clear()

    def start(self) -> None:
        """Start listening; returns once the server answers."""
        self._controller.start()
        self._running = True

    def stop(self) -> None:
        """Stop listening; idempotent."""
        if self._running:
            self._running = False
            self._controller.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _searchable_by(path: Path, user: pwd.struct_passwd) -> bool:
    """Return whether `user` may search every directory from / down to `path`."""
    gids = set(os.getgrouplist(user.pw_name, user.pw_gid))
    for directory in (path, *path.parents):
        info = directory.stat()
        if info.st_uid == user.pw_uid:
            bit = stat.S_IXUSR
        elif info.st_gid in gids:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not info.st_mode & bit:
            return False
    return True


def _session_pids(sid: int) -> list[int]:
    """Return the pids of live processes in session `sid` (the master is its leader)."""
    pids: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue  # exited while we looked
        # Fields after "(comm)"; comm itself may hold spaces or parentheses.
        fields = text[text.rindex(")") + 2 :].split()
        state, session = fields[0], int(fields[3])
        # Zombies are already dead; init reaps those the master left behind.
        if session == sid and state != "Z":
            pids.append(int(entry.name))
    return pids


def _end_instance(master_pid: int | None, scratch: Path | None) -> list[int]:
    """Stop a master and every process of its session; return pids that outlived SIGKILL."""
    left: list[int] = []
    if master_pid is not None:
        # The master leads its own session; on SIGTERM it signals its process group
        # and exits, so this is what "postfix stop" does, minus its 1 s polling.
        with contextlib.suppress(ProcessLookupError):
            os.kill(master_pid, signal.SIGTERM)
        deadline = time.monotonic() + 5.0
        while _session_pids(master_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in _session_pids(master_pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 2.0
        while (left := _session_pids(master_pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
    return left


class PostfixRelay:
    """A private Postfix instance on 127.0.0.1 that relays what it accepts to a recorder."""

    def __init__(
        self,
        workdir: Path,
        *,
        relay_to: tuple[str, int],
        recipient_access: Mapping[str, str] | None = None,
        message_size_limit: int | None = None,
        recipient_limit: int | None = None,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        smtputf8: bool = True,
        local_domains: Sequence[str] = (),
        transports: Mapping[str, str] | None = None,
    ) -> None:
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        self.workdir = workdir.resolve()
        self.relay_to = relay_to
        self.recipient_access = dict(recipient_access or {})
        self.message_size_limit = message_size_limit
        self.recipient_limit = recipient_limit
        self.tls_cert = tls_cert.resolve() if tls_cert is not None else None
        self.tls_key = tls_key.resolve() if tls_key is not None else None
        self.smtputf8 = smtputf8
        # Domains delivered here by local(8): mail to an unknown user is taken, then bounced.
        self.local_domains = tuple(local_domains)
        # transport_maps entries, e.g. {"bounces.test": "smtp:[127.0.0.1]:2526"}.
        self.transports = dict(transports or {})
        self.host = LOOPBACK
        self.port = free_port()
        self.config_dir = self.workdir / "config"
        self.queue_dir = self.workdir / "queue"
        self.data_dir = self.workdir / "data"
        self.maillog = self.workdir / "maillog"
        self._scratch: Path | None = None
        self._master_pid: int | None = None
        self._finalizer: weakref.finalize[[int | None, Path | None], PostfixRelay] | None = None

    def main_cf(self) -> dict[str, str]:
        """Return the main.cf parameters this instance runs with."""
        relay_host, relay_port = self.relay_to
        params = {
            "compatibility_level": "3.6",
            "config_directory": str(self.config_dir),
            "queue_directory": str(self.queue_dir),
            "data_directory": str(self.data_dir),
            # maillog_file must sit under one of these prefixes (default: /var, /dev/stdout).
            "maillog_file_prefixes": str(self.workdir),
            "maillog_file": str(self.maillog),
            "myhostname": "postfix.test",
            "mydomain": "test",
            "myorigin": "$myhostname",
            "inet_interfaces": LOOPBACK,
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtpd_banner": "$myhostname ESMTP Postfix (pochta test relay)",
            # Nothing is local: every domain is relayed, and a stray local address errors
            # out instead of needing aliases or mailboxes.
            "mydestination": "",
            "relay_domains": "",
            "local_recipient_maps": "",
            "local_transport": "error:5.1.1 local delivery is disabled",
            "alias_maps": "",
            "alias_database": "",
            "relayhost": f"[{relay_host}]:{relay_port}",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "smtpd_recipient_restrictions": "",
            "smtputf8_enable": "yes" if self.smtputf8 else "no",
            # No DNS here (the resolver may just time out), so none is ever asked.
            "smtp_dns_support_level": "disabled",
            "smtp_host_lookup": "native",
            "smtpd_peername_lookup": "no",
            "smtp_tls_security_level": "none",
            # Relay the bytes as received: no header rewriting or added headers for
            # loopback clients, no 8bit-to-quoted-printable conversion.
            "local_header_rewrite_clients": "",
            "disable_mime_output_conversion": "yes",
            # No postmaster notices, no soft bounces that keep rejected mail queued.
            "notify_classes": "",
            "soft_bounce": "no",
            # Tests must not wait: deliver at once, retry deferred mail within seconds,
            # answer errors without the default 1 s tarpit.
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "in_flow_delay": "0",
            "smtp_connect_timeout": "5s",
            "smtpd_error_sleep_time": "0",
            "smtpd_soft_error_limit": "100",
            "smtpd_hard_error_limit": "200",
            "biff": "no",
            "append_dot_mydomain": "no",
        }
        if self.recipient_access:
            params["smtpd_recipient_restrictions"] = (
                f"check_recipient_access texthash:{self.config_dir / 'recipient_access'}"
            )
        if self.local_domains:
            params["mydestination"] = ", ".join(self.local_domains)
            params["local_transport"] = "local"
        if self.transports:
            params["transport_maps"] = f"texthash:{self.config_dir / 'transport'}"
        if self.message_size_limit is not None:
            params["message_size_limit"] = str(self.message_size_limit)
        if self.recipient_limit is not None:
            params["smtpd_recipient_limit"] = str(self.recipient_limit)
        if self.tls_cert is not None and self.tls_key is not None:
            params |= {
                "smtpd_tls_security_level": "may",
                "smtpd_tls_cert_file": str(self.tls_cert),
                "smtpd_tls_key_file": str(self.tls_key),
                "smtpd_tls_loglevel": "1",
            }
        else:
            params["smtpd_tls_security_level"] = "none"
        return params

    def _write_config(self) -> None:
        """Lay out config, queue and data directories and write the configuration."""
        for directory in (self.config_dir, self.queue_dir):
            directory.mkdir(parents=True, exist_ok=True)
        # Postfix insists on a root-owned, not group/world-writable queue directory.
        self.queue_dir.chmod(0o755)
        self.data_dir = self._make_data_dir()
        main_cf = "".join(f"{name} = {value}\n" for name, value in self.main_cf().items())
        (self.config_dir / "main.cf").write_text(main_cf)
        master_cf = _MASTER_CF.format(listen=f"{self.host}:{self.port}")
        if self.local_domains:
            master_cf += _LOCAL_CF
        (self.config_dir / "master.cf").write_text(master_cf)
        if self.transports:
            table = "".join(f"{domain} {where}\n" for domain, where in self.transports.items())
            (self.config_dir / "transport").write_text(table)
        if self.recipient_access:
            # Lookup keys are folded to lower case, so the table's keys must be too.
            table = "".join(
                f"{address.lower()} {action}\n" for address, action in self.recipient_access.items()
            )
            (self.config_dir / "recipient_access").write_text(table)

    def _make_data_dir(self) -> Path:
        """Create the data_directory, owned by mail_owner, where mail_owner can reach it."""
        # Unlike the queue (entered with chdir as root), the data directory is opened
        # by absolute path after the daemons drop to mail_owner (the master's lock file
        # first), so every directory above it must be searchable by that user. pytest's
        # tmp_path sits below 0700 directories, so fall back to a scratch directory.
        owner = pwd.getpwnam(MAIL_OWNER)
        if _searchable_by(self.workdir, owner):
            data_dir = self.workdir / "data"
        else:
            self._scratch = Path(tempfile.mkdtemp(prefix="pochta-postfix-", dir="/tmp"))
            # Search only: mail_owner may pass through but nobody can list it.
            self._scratch.chmod(0o711)
            data_dir = self._scratch / "data"
        data_dir.mkdir(mode=0o700, exist_ok=True)
        os.chown(data_dir, owner.pw_uid, owner.pw_gid)
        return data_dir

    def _postfix(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the postfix command against this instance's config directory."""
        return subprocess.run(
            [POSTFIX, "-c", str(self.config_dir), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def _read_master_pid(self) -> int:
        """Return the master's pid from its pid file."""
        return int((self.queue_dir / "pid" / "master.pid").read_text().split()[0])

    def _wait_for_banner(self, timeout: float) -> None:
        """Wait until smtpd greets with 220 on our port."""
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.host, self.port), timeout=2) as sock:
                    greeting = sock.recv(512)
                    if greeting.startswith(b"220"):
                        with contextlib.suppress(OSError):
                            sock.sendall(b"QUIT\r\n")
                        return
                    last_error = RuntimeError(f"unexpected greeting {greeting!r}")
            except OSError as error:
                last_error = error
            time.sleep(0.05)
        raise RuntimeError(
            f"postfix did not answer on {self.host}:{self.port} within {timeout}s "
            f"({last_error}); log:\n{self.log()}"
        )

    def start(self) -> None:
        """Start the instance; returns once it answers on the port."""
        if self._master_pid is not None:
            raise RuntimeError("this PostfixRelay is already running")
        if not os.access(POSTFIX, os.X_OK):
            raise RuntimeError(f"{POSTFIX} is missing: {_INSTALL_HINT}")
        # The master must start as root: it binds, then each daemon drops to mail_owner.
        # As root, "postfix -c DIR" needs no alternate_config_directories entry in
        # /etc/postfix/main.cf, so the system's configuration stays untouched.
        if os.geteuid() != 0:
            raise RuntimeError("a private Postfix instance must be started as root")
        for attempt in range(3):
            self._write_config()
            log_size = len(self.log())
            result = self._postfix("start")
            if result.returncode == 0:
                break
            # free_port() only found the port free; another process may have taken it
            # before the master bound it. Then try another port.
            if "Address already in use" in self.log()[log_size:] and attempt < 2:
                self._end_scratch()
                self.port = free_port()
                continue
            self._end_scratch()
            raise RuntimeError(
                f"postfix start failed ({result.returncode}):\n{result.stdout}{result.stderr}"
                f"\nlog:\n{self.log()}"
            )
        self._master_pid = self._read_master_pid()
        # Safety net: a forgotten stop() still ends the instance at garbage
        # collection or interpreter exit.
        self._finalizer = weakref.finalize(self, _end_instance, self._master_pid, self._scratch)
        try:
            self._wait_for_banner(timeout=20.0)
        except BaseException:
            self.stop()
            raise

    def _end_scratch(self) -> None:
        """Remove the scratch data directory, if start() made one."""
        _end_instance(None, self._scratch)
        self._scratch = None

    def stop(self) -> None:
        """Stop every process of the instance; idempotent."""
        if self._finalizer is None:
            return
        self._finalizer.detach()
        self._finalizer = None
        master_pid, self._master_pid = self._master_pid, None
        survivors = _end_instance(master_pid, self._scratch)
        self._scratch = None
        if survivors:
            raise RuntimeError(f"postfix processes {survivors} survived SIGKILL")

    @property
    def running(self) -> bool:
        """Return whether start() succeeded and stop() has not been called."""
        return self._master_pid is not None

    def pids(self) -> list[int]:
        """Return the pids of the instance's live processes (master and children)."""
        return [] if self._master_pid is None else _session_pids(self._master_pid)

    def log(self) -> str:
        """Return the instance's log text (maillog_file), for assertion messages."""
        try:
            return self.maillog.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for postfix.test and 127.0.0.1 and its key, made with the openssl CLI."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    command = (
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
        f" -keyout {key} -out {cert} -days 2 -subj /CN=postfix.test"
        " -addext subjectAltName=DNS:postfix.test,IP:127.0.0.1"
    )
    subprocess.run(command.split(), check=True, capture_output=True)
    return cert, key
