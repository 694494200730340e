"""Real servers for the connectors' tests and benchmarks, on loopback.

Each server is Debian's own program (``redis-server``, ``nats-server``,
``mosquitto``, PostgreSQL's ``postgres``; ``.ci/run`` installs them), or moto's
Kinesis server (a dev dependency), run on a free loopback port with its data in a
temporary directory::

    with redis_server() as server:
        ...  # server.url == "redis://127.0.0.1:<port>"
        server.restart()  # killed and started again on the same port and data

Nothing is mocked: clients talk to the real server process. A server gets a
parent-death signal, so a test run that is killed leaves none behind; it is
killed by its pid when the block ends, and its directory removed.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = [
    "Server",
    "free_port",
    "mosquitto_server",
    "moto_server",
    "nats_server",
    "postgres_server",
    "redis_server",
]

# Linux prctl(2) option: the signal a process receives when its parent dies.
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port() -> int:
    """A loopback port free now (another process may take it before it is used)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepts_connections(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Server:
    """A server process on ``127.0.0.1:port``, with its data in ``directory``.

    Attributes:
        name: what it is ("redis-server", ...), for messages.
        port: its loopback port (kept across restarts).
        directory: its data directory.
        url: how clients reach it.
    """

    def __init__(
        self,
        name: str,
        command: Callable[[int, Path], list[str]],
        url: Callable[[int], str],
        directory: Path,
        *,
        user: str | None = None,
        ready: Callable[[Server], bool] | None = None,
        startup_timeout: float = 20.0,
    ) -> None:
        self.name = name
        self.directory = directory
        self.port = free_port()
        self.url = url(self.port)
        self._command = command
        self._user = user
        self._ready = ready
        self._timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log = directory / "server.log"

    @property
    def pid(self) -> int:
        """The running process's id."""
        if self._process is None:
            raise RuntimeError(f"{self.name} is not running")
        return self._process.pid

    def start(self) -> None:
        """Start the process; return once it accepts connections.

        Raises:
            RuntimeError: when it exits or is not ready within the startup timeout
                (its output is in the message).
        """
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(
                self._command(self.port, self.directory),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                user=self._user,
                # prctl must run in the child, before exec
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
            )
        deadline = time.monotonic() + self._timeout
        while not (_accepts_connections(self.port) and (self._ready is None or self._ready(self))):
            if self._process.poll() is not None:
                output = self._log.read_text(errors="replace")
                raise RuntimeError(f"{self.name} exited at start:\n{output}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{self.name} was not ready within {self._timeout}s")
            time.sleep(0.01)

    def kill(self) -> None:
        """Kill the process (SIGKILL, by pid) and reap it; idempotent."""
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
            process.wait()

    def restart(self) -> None:
        """Kill it and start it again, on the same port and data."""
        self.kill()
        self.start()


@contextlib.contextmanager
def _serving(
    name: str,
    command: Callable[[int, Path], list[str]],
    url: Callable[[int], str],
    *,
    user: str | None = None,
    prepare: Callable[[Path], None] | None = None,
    ready: Callable[[Server], bool] | None = None,
    binary: str | None = None,
    package: str | None = None,
) -> Iterator[Server]:
    binary = binary or name
    if shutil.which(binary) is None and not Path(binary).is_file():
        package = package or name
        msg = f"{name} is not installed: .ci/run installs it (apt-get install {package})"
        raise RuntimeError(msg)
    directory = Path(tempfile.mkdtemp(prefix=f"streamio-{name}-"))
    try:
        if user is not None:
            os.chown(directory, pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid)
        if prepare is not None:
            prepare(directory)
        server = Server(name, command, url, directory, user=user, ready=ready)
        try:
            server.start()
            yield server
        finally:
            server.kill()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def redis_server(*, durable: bool = True) -> contextlib.AbstractContextManager[Server]:
    """``redis-server``; ``durable``: with an append-only file fsynced at each write,
    so that a killed server restarts with its streams, groups and pending entries
    (benchmarks turn it off: the disk would be measured)."""

    def command(port: int, directory: Path) -> list[str]:
        return [
            "redis-server",
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", str(directory),
            "--appendonly", "yes" if durable else "no",
            "--appendfsync", "always",
            "--save", "",
            "--daemonize", "no",
        ]  # fmt: skip

    return _serving("redis-server", command, lambda port: f"redis://127.0.0.1:{port}")


def nats_server() -> contextlib.AbstractContextManager[Server]:
    """``nats-server`` with JetStream on, its store in the server's directory (kept
    across a restart)."""

    def command(port: int, directory: Path) -> list[str]:
        return [
            "nats-server",
            "-a", "127.0.0.1",
            "-p", str(port),
            "-js",
            "-sd", str(directory / "jetstream"),
        ]  # fmt: skip

    return _serving("nats-server", command, lambda port: f"nats://127.0.0.1:{port}")


def mosquitto_server(*, max_queued: int = 100_000) -> contextlib.AbstractContextManager[Server]:
    """``mosquitto`` from a configuration file binding 127.0.0.1 on a free port,
    anonymous clients allowed, queueing up to ``max_queued`` messages per offline
    session (0: no limit)."""

    def command(port: int, directory: Path) -> list[str]:
        config = directory / "mosquitto.conf"
        config.write_text(
            f"listener {port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence false\n"
            f"max_queued_messages {max_queued}\n"
            "log_dest stdout\n"
            # the running user: mosquitto started as root would switch to its own
            f"user {pwd.getpwuid(os.getuid()).pw_name}\n"
        )
        return ["mosquitto", "-c", str(config)]

    return _serving("mosquitto", command, lambda port: f"mqtt://127.0.0.1:{port}")


def _postgres_bin(program: str) -> str:
    """The newest installed PostgreSQL's ``program`` (Debian keeps them out of PATH)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{program}"),
        key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0,
    )
    return str(found[-1]) if found else program


def _postgres_user() -> str | None:
    """PostgreSQL refuses to run as root: as root, run it as ``postgres`` (made by
    Debian's package) or else ``nobody``; otherwise as the user running the tests."""
    if os.getuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("no user other than root to run PostgreSQL as (useradd postgres)")


def postgres_server() -> contextlib.AbstractContextManager[Server]:
    """PostgreSQL's ``postgres``, its cluster made by ``initdb`` in the server's
    directory (trust authentication on loopback, user ``postgres``, database
    ``postgres``), its socket in that directory too; run as a non-root user."""
    user = _postgres_user()

    def prepare(directory: Path) -> None:
        subprocess.run(
            [_postgres_bin("initdb"), "-D", str(directory / "data"), "-U", "postgres",
             "--auth=trust", "--no-sync", "-E", "UTF8"],
            check=True, user=user, cwd=directory,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip

    def command(port: int, directory: Path) -> list[str]:
        return [
            _postgres_bin("postgres"),
            "-D", str(directory / "data"),
            "-h", "127.0.0.1",
            "-p", str(port),
            "-k", str(directory),
            "-c", "fsync=off",
        ]  # fmt: skip

    def ready(server: Server) -> bool:  # accepting connections, not only the port
        probe = subprocess.run(
            [_postgres_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(server.port), "-q"],
            check=False,
        )
        return probe.returncode == 0

    return _serving(
        "postgres",
        command,
        lambda port: f"postgresql://postgres@127.0.0.1:{port}/postgres",
        user=user,
        prepare=prepare,
        ready=ready,
        binary=_postgres_bin("postgres"),
        package="postgresql",
    )


def moto_server(
    *, shard_write_limit: tuple[int, float] | None = None
) -> contextlib.AbstractContextManager[Server]:
    """moto's standalone server (``moto[server]``) speaking the Kinesis API over
    HTTP, corrected to reshard as Kinesis does (see
    :mod:`streamio.connectors.kinesis.testing`); ``server.url`` is its endpoint.

    ``shard_write_limit=(records, seconds)``: each shard accepts at most that many
    records in any such window, and ``PutRecords`` fails the others with
    ``ProvisionedThroughputExceededException``, as Kinesis does past its limit.

    moto keeps everything in memory: a restarted server has no streams (create
    them again).
    """
    if importlib.util.find_spec("moto") is None:
        raise RuntimeError("moto is not installed: pip install 'streamio[dev]' (moto[server])")
    limit = [] if shard_write_limit is None else [
        "--shard-write-limit", f"{shard_write_limit[0]}/{shard_write_limit[1]}"
    ]  # fmt: skip

    def command(port: int, directory: Path) -> list[str]:
        return [
            sys.executable, "-m", "streamio.connectors.kinesis.testing",
            "-H", "127.0.0.1", "-p", str(port), *limit,
        ]  # fmt: skip

    return _serving(
        "moto_server",
        command,
        lambda port: f"http://127.0.0.1:{port}",
        binary=sys.executable,
        package="moto[server]",
    )
