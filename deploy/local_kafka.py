"""A real single-node Apache Kafka (KRaft) on 127.0.0.1, resolved from Maven Central.

There is no Docker engine on our machines, so the project runs the broker itself: Maven copies
a pinned Kafka release's jars (deploy/kafka/pom.xml) into a git-ignored cache, storage is
formatted once, and the broker+controller runs as a background Java process whose pid we
record, so `down` stops only the broker that `up` started.

With `--sasl` the broker also listens for SASL_PLAINTEXT on port+2 (SCRAM-SHA-256, SCRAM-SHA-512
and PLAIN; the SCRAM credentials are written when storage is formatted); `--tls` adds SASL_SSL on
port+3 and mutual-TLS SSL on port+4, with a local CA and certificates made by openssl under the
instance's `tls/` directory. Clients then connect as a real cluster would make them.

Usage: python -m deploy.local_kafka up|down|status [--port 9092] [--controller-port 9093]
       [--sasl] [--tls]   (also `engage broker up|down|status`).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
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
SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
DEFAULT_SASL_USER = ("engage", "engage-local-secret")


class BrokerError(RuntimeError):
    """The local broker could not be resolved, started or stopped."""


@dataclass(frozen=True)
class LocalBroker:
    """Paths and ports of one local broker instance (one per port)."""

    port: int = 9092
    controller_port: int = 9093
    home: Path = DEFAULT_HOME
    sasl_port: int | None = None  # SASL_PLAINTEXT: SCRAM-SHA-256/512 and PLAIN
    tls_port: int | None = None  # SASL_SSL, same mechanisms over TLS
    mtls_port: int | None = None  # SSL with a required client certificate
    sasl_user: tuple[str, str] = DEFAULT_SASL_USER  # (name, password)

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

    @property
    def tls_dir(self) -> Path:
        return self.instance / "tls"

    @property
    def ca_file(self) -> Path:
        """The local CA's certificate: what clients trust (ssl cafile)."""
        return self.tls_dir / "ca.pem"

    @property
    def client_cert_file(self) -> Path:
        return self.tls_dir / "client.pem"

    @property
    def client_key_file(self) -> Path:
        return self.tls_dir / "client.key"

    @property
    def scram_marker(self) -> Path:
        return self.instance / "scram-users"

    def client_listeners(self) -> dict[str, int]:
        """Listener name -> port, for every client listener this broker has."""
        listeners = {"PLAINTEXT": self.port}
        for name, port in (("SASL_PLAINTEXT", self.sasl_port), ("SASL_SSL", self.tls_port),
                           ("SSL", self.mtls_port)):
            if port is not None:
                listeners[name] = port
        return listeners


def default_broker() -> LocalBroker:
    """The broker named by ENGAGE_KAFKA_PORT / ENGAGE_KAFKA_HOME, else the defaults."""
    port = int(os.environ.get("ENGAGE_KAFKA_PORT", "9092"))
    controller = int(os.environ.get("ENGAGE_KAFKA_CONTROLLER_PORT", str(port + 1)))
    home = Path(os.environ.get("ENGAGE_KAFKA_HOME", str(DEFAULT_HOME)))
    return LocalBroker(port=port, controller_port=controller, home=home)


def with_security(broker: LocalBroker, sasl: bool, tls: bool) -> LocalBroker:
    """The same broker with its SASL (port+2) and TLS (port+3, port+4) listeners switched on;
    the SASL user comes from ENGAGE_KAFKA_SASL_USERNAME / _PASSWORD when they are set."""
    from dataclasses import replace

    user = (
        os.environ.get("ENGAGE_KAFKA_SASL_USERNAME") or DEFAULT_SASL_USER[0],
        os.environ.get("ENGAGE_KAFKA_SASL_PASSWORD") or DEFAULT_SASL_USER[1],
    )
    return replace(
        broker,
        sasl_port=broker.port + 2 if sasl or tls else None,
        tls_port=broker.port + 3 if tls else None,
        mtls_port=broker.port + 4 if tls else None,
        sasl_user=user,
    )


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


def _security_properties(broker: LocalBroker) -> dict[str, str]:
    """Listener settings for SASL and TLS (the JAAS lines name the PLAIN user's password)."""
    settings: dict[str, str] = {}
    name, password = broker.sasl_user
    for listener in ("SASL_PLAINTEXT", "SASL_SSL"):
        if listener not in broker.client_listeners():
            continue
        prefix = f"listener.name.{listener.lower()}"
        settings[f"{prefix}.sasl.enabled.mechanisms"] = ",".join([*SCRAM_MECHANISMS, "PLAIN"])
        for mechanism in SCRAM_MECHANISMS:
            settings[f"{prefix}.{mechanism.lower()}.sasl.jaas.config"] = (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            )
        settings[f"{prefix}.plain.sasl.jaas.config"] = (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'user_{name}="{password}";'
        )
    for listener in ("SASL_SSL", "SSL"):
        if listener not in broker.client_listeners():
            continue
        prefix = f"listener.name.{listener.lower()}"
        settings[f"{prefix}.ssl.keystore.type"] = "PEM"
        settings[f"{prefix}.ssl.keystore.location"] = str(broker.tls_dir / "broker.pem")
        settings[f"{prefix}.ssl.truststore.type"] = "PEM"
        settings[f"{prefix}.ssl.truststore.location"] = str(broker.ca_file)
        settings[f"{prefix}.ssl.client.auth"] = "required" if listener == "SSL" else "none"
    return settings


def _properties(broker: LocalBroker) -> str:
    clients = broker.client_listeners()
    listeners = [f"{n}://127.0.0.1:{p}" for n, p in clients.items()]
    protocols = ",".join(f"{n}:{n}" for n in clients)
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{broker.controller_port}",
        "listeners": ",".join([*listeners, f"CONTROLLER://127.0.0.1:{broker.controller_port}"]),
        "advertised.listeners": ",".join(listeners),
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": f"CONTROLLER:PLAINTEXT,{protocols}",
        **_security_properties(broker),
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


def _scram_users(broker: LocalBroker) -> str:
    """What the SCRAM credentials written at format time are (user name and a password hash)."""
    if broker.sasl_port is None:
        return ""
    name, password = broker.sasl_user
    return f"{name}:{hashlib.sha256(password.encode()).hexdigest()}\n"


def new_cluster_id() -> str:
    """A random cluster id as Kafka's own Uuid.randomUuid makes them: URL-safe base64 of 16
    bytes that never starts with '-' (the storage tool would take it for an option, so one
    broker start in 64 failed)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def format_storage(broker: LocalBroker) -> None:
    """Format KRaft storage once per data dir (a formatted dir keeps its cluster id).

    SCRAM credentials live in the cluster metadata, so they are written at format time
    (`--add-scram`); a dir formatted with other credentials must be reset first.
    """
    broker.instance.mkdir(parents=True, exist_ok=True)
    broker.log_dir.mkdir(parents=True, exist_ok=True)
    if broker.tls_port is not None or broker.mtls_port is not None:
        make_certificates(broker)
    broker.properties_file.write_text(_properties(broker))
    if (broker.data_dir / "meta.properties").exists():
        written = broker.scram_marker.read_text() if broker.scram_marker.exists() else ""
        if _scram_users(broker) and written != _scram_users(broker):
            raise BrokerError(
                f"the broker on port {broker.port} was formatted without these SCRAM "
                "credentials; `engage broker reset` it (its topics are lost) and start again"
            )
        return
    scram: list[str] = []
    if broker.sasl_port is not None:
        name, password = broker.sasl_user
        for mechanism in SCRAM_MECHANISMS:
            scram += ["--add-scram", f"{mechanism}=[name={name},password={password}]"]
    cmd = _java_cmd(
        broker,
        "kafka.tools.StorageTool",
        "format",
        "-t",
        new_cluster_id(),
        "-c",
        str(broker.properties_file),
        "--standalone",
        *scram,
    )
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BrokerError(
            "formatting KRaft storage failed:\n" + (result.stdout + result.stderr)[-3000:]
        )
    broker.scram_marker.write_text(_scram_users(broker))


def make_certificates(broker: LocalBroker) -> None:
    """A local CA, a broker certificate for 127.0.0.1/localhost and a client certificate
    (PEM, unencrypted PKCS#8 keys as OpenSSL 3 writes them), made once per instance."""
    tls = broker.tls_dir
    if (tls / "broker.pem").exists() and broker.client_key_file.exists():
        return
    if shutil.which("openssl") is None:
        raise BrokerError("openssl is not on PATH; it makes the local broker's certificates")
    tls.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        result = subprocess.run(["openssl", *args], capture_output=True, text=True, cwd=tls)
        if result.returncode != 0:
            raise BrokerError(f"openssl {args[0]} failed:\n{result.stderr[-2000:]}")

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "825",
            "-subj", "/CN=engage local CA", "-keyout", "ca.key", "-out", "ca.pem")
    for name, ext in (("broker", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
                      ("client", "extendedKeyUsage=clientAuth")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN=engage-{name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr")
        (tls / f"{name}.ext").write_text(ext + "\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "825", "-extfile", f"{name}.ext",
                "-out", f"{name}.crt")
    # Kafka's PEM keystore: the private key and its certificate chain in one file.
    (tls / "broker.pem").write_text(
        (tls / "broker.key").read_text() + (tls / "broker.crt").read_text()
    )
    (tls / "client.pem").write_text((tls / "client.crt").read_text())


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
        if all(port_open(p) for p in broker.client_listeners().values()) and answers(
            broker.bootstrap, timeout_s=3
        ):
            return f"broker up on {_describe(broker)} (pid {_pid(broker)}, logs {broker.log_file})"
        time.sleep(0.5)
    down(broker)
    raise BrokerError(
        f"the broker did not answer within {timeout_s:.0f}s. Last lines of its log:\n"
        + tail(broker.log_file)
    )


def _describe(broker: LocalBroker) -> str:
    text = ", ".join(f"{n} 127.0.0.1:{p}" for n, p in broker.client_listeners().items())
    if broker.sasl_port is not None:
        text += f"; SASL user {broker.sasl_user[0]!r}"
    if broker.tls_port is not None:
        text += f"; CA {broker.ca_file}, client certificate {broker.client_cert_file}"
    return text


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
    parser.add_argument("--sasl", action="store_true",
                        help="also SASL_PLAINTEXT (SCRAM-SHA-256/512, PLAIN) on port+2")
    parser.add_argument("--tls", action="store_true",
                        help="also SASL_SSL on port+3 and mutual-TLS SSL on port+4")
    args = parser.parse_args(argv)
    base = default_broker()
    port = args.port or base.port
    broker = LocalBroker(
        port=port,
        controller_port=args.controller_port or (port + 1 if args.port else base.controller_port),
        home=base.home,
    )
    broker = with_security(broker, args.sasl, args.tls)
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
