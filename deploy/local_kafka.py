"""A real single-node Apache Kafka (KRaft) on 127.0.0.1, resolved from Maven Central.

There is no Docker engine on our machines, so the project runs the broker itself: Maven copies
a pinned Kafka release's jars (deploy/kafka/pom.xml) into a git-ignored cache, storage is
formatted once, and the broker+controller runs as a background Java process whose pid we
record, so `down` stops only the broker that `up` started.

Usage: python -m deploy.local_kafka up|down|status [--port 9092] [--controller-port 9093]
(also `engage broker up|down|status`).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

DEPLOY_DIR = Path(__file__).resolve().parent
POM = DEPLOY_DIR / "kafka" / "pom.xml"
LOG4J_CONFIG = DEPLOY_DIR / "kafka" / "log4j2.properties"
DEFAULT_HOME = DEPLOY_DIR / ".kafka"
START_TIMEOUT_S = 90.0


class BrokerError(RuntimeError):
    """The local broker could not be resolved, started or stopped."""


@dataclass(frozen=True)
class LocalBroker:
    """Paths and ports of one local broker instance (one per port)."""

    port: int = 9092
    controller_port: int = 9093
    home: Path = DEFAULT_HOME

    @property
    def libs(self) -> Path:
        return self.home / "libs"

    @property
    def instance(self) -> Path:
        return self.home / f"broker-{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.instance / "data"

    @property
    def log_dir(self) -> Path:
        return self.instance / "logs"

    @property
    def log_file(self) -> Path:
        return self.log_dir / "server.log"

    @property
    def stdout_file(self) -> Path:
        return self.log_dir / "stdout.log"

    @property
    def pid_file(self) -> Path:
        return self.instance / "broker.pid"

    @property
    def properties_file(self) -> Path:
        return self.instance / "server.properties"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


def default_broker() -> LocalBroker:
    """The broker named by ENGAGE_KAFKA_PORT / ENGAGE_KAFKA_HOME, else the defaults."""
    port = int(os.environ.get("ENGAGE_KAFKA_PORT", "9092"))
    controller = int(os.environ.get("ENGAGE_KAFKA_CONTROLLER_PORT", str(port + 1)))
    home = Path(os.environ.get("ENGAGE_KAFKA_HOME", str(DEFAULT_HOME)))
    return LocalBroker(port=port, controller_port=controller, home=home)


def resolve_jars(broker: LocalBroker) -> None:
    """Copy the pinned Kafka jars from Maven Central once; later calls are no-ops."""
    marker = broker.libs / ".resolved"
    if marker.exists() and marker.read_text() == POM.read_text():
        return
    if shutil.which("mvn") is None:
        raise BrokerError("Maven (mvn) is not on PATH; it is needed to fetch Kafka's jars")
    if shutil.which("java") is None:
        raise BrokerError("java is not on PATH; Kafka 4 needs a JDK 17")
    if broker.libs.exists():
        shutil.rmtree(broker.libs)
    broker.libs.mkdir(parents=True)
    cmd = [
        "mvn",
        "-q",
        "-B",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={broker.libs}",
        "-DincludeScope=runtime",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BrokerError(
            "Maven could not resolve Kafka:\n" + (result.stdout + result.stderr)[-3000:]
        )
    marker.write_text(POM.read_text())


def _properties(broker: LocalBroker) -> str:
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{broker.controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{broker.port},CONTROLLER://127.0.0.1:{broker.controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{broker.port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(broker.data_dir),
        "num.partitions": "1",
        # Topics are created explicitly by the project, never by the broker.
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "8",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # A single local node: rebalance at once instead of waiting for more members.
        "group.initial.rebalance.delay.ms": "0",
        "log.retention.hours": "24",
        "log.segment.bytes": str(64 * 1024 * 1024),
    }
    return "".join(f"{k}={v}\n" for k, v in settings.items())


def _java_cmd(broker: LocalBroker, main_class: str, *args: str) -> list[str]:
    return [
        "java",
        "-Xms256m",
        "-Xmx1g",
        "-XX:+UseG1GC",
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
        f"-Dkafka.logs.dir={broker.log_dir}",
        "-cp",
        str(broker.libs / "*"),
        main_class,
        *args,
    ]


def new_cluster_id() -> str:
    """A random cluster id as Kafka's own Uuid.randomUuid makes them: URL-safe base64 of 16
    bytes that never starts with '-' (the storage tool would take it for an option, so one
    broker start in 64 failed)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def format_storage(broker: LocalBroker) -> None:
    """Format KRaft storage once per data dir (a formatted dir keeps its cluster id)."""
    broker.instance.mkdir(parents=True, exist_ok=True)
    broker.log_dir.mkdir(parents=True, exist_ok=True)
    broker.properties_file.write_text(_properties(broker))
    if (broker.data_dir / "meta.properties").exists():
        return
    cmd = _java_cmd(
        broker,
        "kafka.tools.StorageTool",
        "format",
        "-t",
        new_cluster_id(),
        "-c",
        str(broker.properties_file),
        "--standalone",
    )
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BrokerError(
            "formatting KRaft storage failed:\n" + (result.stdout + result.stderr)[-3000:]
        )


def _pid(broker: LocalBroker) -> int | None:
    """The pid of the broker we started, if that process is still ours and alive."""
    try:
        pid = int(broker.pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return pid if str(broker.properties_file).encode() in cmdline else None


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def answers(bootstrap: str, timeout_s: float = 5.0) -> bool:
    """True when a Kafka broker answers a metadata request at `bootstrap`."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            request_timeout_ms=int(timeout_s * 1000),
            client_id="engage-broker-probe",
        )
    except (KafkaError, OSError, ValueError):
        return False
    try:
        admin.list_topics()
        return True
    except (KafkaError, OSError, ValueError):
        return False
    finally:
        admin.close()


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"(no log at {path})"


def up(broker: LocalBroker, timeout_s: float = START_TIMEOUT_S) -> str:
    """Start the broker unless ours is already running; return a one-line status."""
    if _pid(broker) is not None and answers(broker.bootstrap):
        return f"broker already running on {broker.bootstrap} (pid {_pid(broker)})"
    if port_open(broker.port) and _pid(broker) is None:
        if answers(broker.bootstrap):
            return (
                f"a broker not started by this script already answers on {broker.bootstrap}; "
                "using it"
            )
        raise BrokerError(f"port {broker.port} is taken by another process")
    resolve_jars(broker)
    format_storage(broker)
    proc: subprocess.Popen[bytes] | None = None
    if _pid(broker) is None:
        with broker.stdout_file.open("ab") as out:
            proc = subprocess.Popen(
                _java_cmd(broker, "kafka.Kafka", str(broker.properties_file)),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        broker.pid_file.write_text(str(proc.pid))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (proc.poll() is not None) if proc is not None else _pid(broker) is None:
            broker.pid_file.unlink(missing_ok=True)
            raise BrokerError(
                "the broker exited during start-up. Last lines of its log:\n"
                + tail(broker.log_file)
                + "\n"
                + tail(broker.stdout_file, 15)
            )
        if port_open(broker.port) and answers(broker.bootstrap, timeout_s=3):
            return f"broker up on {broker.bootstrap} (pid {_pid(broker)}, logs {broker.log_file})"
        time.sleep(0.5)
    down(broker)
    raise BrokerError(
        f"the broker did not answer within {timeout_s:.0f}s. Last lines of its log:\n"
        + tail(broker.log_file)
    )


def down(broker: LocalBroker, timeout_s: float = 30.0) -> str:
    """Stop the broker this script started (by its pid); anything else is left alone."""
    pid = _pid(broker)
    if pid is None:
        broker.pid_file.unlink(missing_ok=True)
        return f"no broker started by this script is running on port {broker.port}"
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _pid(broker) is not None:
        time.sleep(0.2)
    if _pid(broker) is not None:
        os.kill(pid, signal.SIGKILL)
    broker.pid_file.unlink(missing_ok=True)
    return f"broker on port {broker.port} stopped (pid {pid})"


def status(broker: LocalBroker) -> tuple[bool, str]:
    pid = _pid(broker)
    if pid is not None and answers(broker.bootstrap, timeout_s=3):
        return True, f"running on {broker.bootstrap} (pid {pid}, logs {broker.log_file})"
    if pid is not None:
        return False, f"process {pid} exists but does not answer on {broker.bootstrap}"
    return False, f"not running (port {broker.port})"


def reset(broker: LocalBroker) -> str:
    """Stop the broker and delete its data (the jar cache is kept)."""
    message = down(broker)
    shutil.rmtree(broker.instance, ignore_errors=True)
    return message + "; data removed"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="engage broker", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down", "status", "reset"])
    parser.add_argument("--port", type=int, default=None, help="client port (default 9092)")
    parser.add_argument("--controller-port", type=int, default=None, help="default port+1")
    args = parser.parse_args(argv)
    base = default_broker()
    port = args.port or base.port
    broker = LocalBroker(
        port=port,
        controller_port=args.controller_port or (port + 1 if args.port else base.controller_port),
        home=base.home,
    )
    try:
        if args.action == "up":
            print(up(broker))
        elif args.action == "down":
            print(down(broker))
        elif args.action == "reset":
            print(reset(broker))
        else:
            running, text = status(broker)
            print(text)
            return 0 if running else 3
    except BrokerError as exc:
        print(f"engage broker {args.action}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
