"""How every Kafka client engage runs authenticates: SASL (PLAIN, SCRAM) and TLS, in one place.

The worker (Faust), the churn model reader (aiokafka) and the side tools (kafka-python) all
take their security settings from one `KafkaSecurity`, so a cluster that needs SASL_SSL is
configured once. Sources, the first that sets a value wins:

1. flags (`--kafka-security-protocol`, ...; secrets only as files: `--kafka-sasl-password-file`),
2. `ENGAGE_KAFKA_*` environment variables; each secret also as `<NAME>_FILE` (a mounted file),
3. a Kafka client properties file (`--kafka-config` / `ENGAGE_KAFKA_CONFIG`) in the format
   Confluent Cloud, MSK and Strimzi hand out (Java or librdkafka key names, PEM files only),
4. plaintext, no authentication (a laptop's broker).
"""

from __future__ import annotations

import argparse
import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

DEFAULT_BROKER = "127.0.0.1:9092"
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
SECRETS = ("sasl_password", "ssl_key_password")


class KafkaSecurityError(ValueError):
    """Security settings that cannot work together, or a file that cannot be read."""


@dataclass(frozen=True)
class KafkaSecurity:
    """The protocol, SASL login and TLS files of a Kafka connection (validated on creation)."""

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None  # None: the system's trusted CAs (public clouds)
    ssl_certfile: str | None = None  # client certificate (mutual TLS), PEM
    ssl_keyfile: str | None = None  # its private key, PEM (may be the certificate's file)
    ssl_key_password: str | None = field(default=None, repr=False)
    ssl_check_hostname: bool = True

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise KafkaSecurityError(
                f"security protocol {self.protocol!r} is not one of {', '.join(PROTOCOLS)}"
            )
        if self.uses_sasl:
            if self.sasl_mechanism not in SASL_MECHANISMS:
                raise KafkaSecurityError(
                    f"{self.protocol} needs a SASL mechanism, one of {', '.join(SASL_MECHANISMS)}"
                    f" (got {self.sasl_mechanism!r})"
                )
            if not self.sasl_username or not self.sasl_password:
                raise KafkaSecurityError(
                    f"{self.protocol} needs a SASL username and password "
                    "(ENGAGE_KAFKA_SASL_USERNAME, ENGAGE_KAFKA_SASL_PASSWORD[_FILE])"
                )
        elif self.sasl_mechanism or self.sasl_username or self.sasl_password:
            raise KafkaSecurityError(
                f"SASL settings are given but the security protocol is {self.protocol}; "
                "use SASL_PLAINTEXT or SASL_SSL"
            )
        tls_files = (self.ssl_cafile, self.ssl_certfile, self.ssl_keyfile)
        if not self.uses_ssl and any(tls_files):
            raise KafkaSecurityError(
                f"TLS files are given but the security protocol is {self.protocol}; "
                "use SSL or SASL_SSL"
            )
        if self.ssl_keyfile and not self.ssl_certfile:
            raise KafkaSecurityError("a TLS client key needs its certificate (ssl certfile)")
        for path in tls_files:
            if path and not os.access(path, os.R_OK):
                raise KafkaSecurityError(f"cannot read TLS file {path}")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def uses_ssl(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client TLS context that verifies the broker (None without TLS)."""
        if not self.uses_ssl:
            return None
        context = ssl.create_default_context(cafile=self.ssl_cafile)
        context.check_hostname = self.ssl_check_hostname
        if self.ssl_certfile:
            try:
                context.load_cert_chain(
                    self.ssl_certfile, self.ssl_keyfile, self.ssl_key_password
                )
            except (ssl.SSLError, OSError) as exc:
                raise KafkaSecurityError(
                    f"cannot load the TLS client certificate {self.ssl_certfile}: {exc}"
                ) from None
        return context

    def faust_settings(self) -> dict[str, Any]:
        """`faust.App(...)` keyword arguments."""
        import faust

        context = self.ssl_context()
        if self.uses_sasl:
            credentials: Any = faust.SASLCredentials(
                username=self.sasl_username, password=self.sasl_password,
                mechanism=self.sasl_mechanism, ssl_context=context,
            )
            return {"broker_credentials": credentials}
        if context is not None:
            return {"broker_credentials": faust.SSLCredentials(context)}
        return {}

    def client_settings(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's and kafka-python's clients (the same names)."""
        settings: dict[str, Any] = {"security_protocol": self.protocol}
        context = self.ssl_context()
        if context is not None:
            settings["ssl_context"] = context
        if self.uses_sasl:
            settings.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password,
            )
        return settings


@dataclass(frozen=True)
class KafkaConnection:
    """Where the brokers are and how to log in: what every client constructor needs."""

    bootstrap: str = DEFAULT_BROKER
    security: KafkaSecurity = field(default_factory=KafkaSecurity)


# -- sources ---------------------------------------------------------------------------------

_ENV = {
    "protocol": "ENGAGE_KAFKA_SECURITY_PROTOCOL",
    "sasl_mechanism": "ENGAGE_KAFKA_SASL_MECHANISM",
    "sasl_username": "ENGAGE_KAFKA_SASL_USERNAME",
    "sasl_password": "ENGAGE_KAFKA_SASL_PASSWORD",
    "ssl_cafile": "ENGAGE_KAFKA_SSL_CAFILE",
    "ssl_certfile": "ENGAGE_KAFKA_SSL_CERTFILE",
    "ssl_keyfile": "ENGAGE_KAFKA_SSL_KEYFILE",
    "ssl_key_password": "ENGAGE_KAFKA_SSL_KEY_PASSWORD",
    "ssl_check_hostname": "ENGAGE_KAFKA_SSL_CHECK_HOSTNAME",
}
CONFIG_ENV = "ENGAGE_KAFKA_CONFIG"
_FILE_FLAGS = {"sasl_password": "sasl_password_file", "ssl_key_password": "ssl_key_password_file"}


def read_secret_file(path: str, what: str) -> str:
    """A secret from a mounted file (Kubernetes secret, Docker secret), without the final
    newline that editors and `echo` add."""
    try:
        return Path(path).read_text().rstrip("\r\n")
    except OSError as exc:
        raise KafkaSecurityError(f"cannot read {what} from {path}: {exc.strerror}") from None


def env_value(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """`NAME`, else the contents of the file named by `NAME_FILE`, else None."""
    from streams.secrets import SecretError, read_secret

    try:
        return read_secret(name, environ)
    except SecretError as exc:
        raise KafkaSecurityError(str(exc)) from None


def _bool(text: str, what: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on", "https"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise KafkaSecurityError(f"{what} must be true or false, not {text!r}")


def parse_properties(text: str) -> dict[str, str]:
    """Java `.properties` lines: `key=value` or `key: value`, `#`/`!` comments, and a
    trailing backslash continuing a line (as in a multi-line `sasl.jaas.config`)."""
    result: dict[str, str] = {}
    logical = ""
    for raw in text.splitlines():
        line = raw.strip() if not logical else raw.lstrip()
        if not logical and (not line or line[0] in "#!"):
            continue
        if line.endswith("\\") and not line.endswith("\\\\"):
            logical += line[:-1]
            continue
        logical += line
        match = re.match(r"([^=:\s]+)\s*[=:\s]?\s*(.*)", logical)
        if match:
            result[match.group(1)] = match.group(2).strip()
        logical = ""
    return result


_JAAS_FIELD = re.compile(r"""\b(username|password)\s*=\s*(?:"([^"]*)"|'([^']*)')""")

# Kafka client property names (Java and librdkafka) -> KafkaSecurity fields.
_PROPERTY_FIELDS = {
    "security.protocol": "protocol",
    "sasl.mechanism": "sasl_mechanism",
    "sasl.mechanisms": "sasl_mechanism",
    "sasl.username": "sasl_username",
    "sasl.password": "sasl_password",
    "ssl.ca.location": "ssl_cafile",
    "ssl.truststore.location": "ssl_cafile",
    "ssl.certificate.location": "ssl_certfile",
    "ssl.key.location": "ssl_keyfile",
    "ssl.key.password": "ssl_key_password",
}
# Understood and checked below, or harmless.
_PROPERTY_OTHER = {
    "bootstrap.servers", "sasl.jaas.config", "ssl.truststore.type", "ssl.keystore.type",
    "ssl.keystore.location", "ssl.endpoint.identification.algorithm",
}


def security_from_properties(path: str) -> tuple[str | None, dict[str, Any]]:
    """Bootstrap servers and KafkaSecurity fields from a Kafka client properties file.

    Security keys (`security.*`, `sasl.*`, `ssl.*`) that engage does not support are refused
    rather than ignored; client tuning keys (`acks`, `session.timeout.ms`, ...) are ignored.
    """
    try:
        props = parse_properties(Path(path).read_text())
    except OSError as exc:
        raise KafkaSecurityError(
            f"cannot read Kafka client config {path}: {exc.strerror}"
        ) from None
    values: dict[str, Any] = {}
    for key, value in props.items():
        if key in _PROPERTY_FIELDS:
            values[_PROPERTY_FIELDS[key]] = value
        elif key not in _PROPERTY_OTHER and key.split(".")[0] in ("security", "sasl", "ssl"):
            raise KafkaSecurityError(
                f"{path}: {key} is not supported (engage understands "
                f"{', '.join(sorted([*_PROPERTY_FIELDS, *_PROPERTY_OTHER]))})"
            )
    for key in ("ssl.truststore.type", "ssl.keystore.type"):
        if props.get(key, "PEM").upper() != "PEM":
            raise KafkaSecurityError(
                f"{path}: {key}={props[key]} is not supported; convert the store to PEM files"
            )
    if "ssl.keystore.location" in props:  # a PEM keystore holds the key and its certificate
        values.setdefault("ssl_certfile", props["ssl.keystore.location"])
        values.setdefault("ssl_keyfile", props["ssl.keystore.location"])
    if "ssl.endpoint.identification.algorithm" in props:
        values["ssl_check_hostname"] = _bool(
            props["ssl.endpoint.identification.algorithm"], "ssl.endpoint.identification.algorithm"
        )
    jaas = props.get("sasl.jaas.config")
    if jaas:
        for m in _JAAS_FIELD.finditer(jaas):
            value = m.group(2) if m.group(2) is not None else m.group(3)
            values.setdefault(f"sasl_{m.group(1)}", value)
    return props.get("bootstrap.servers"), values


def resolve_connection(
    broker: str | None = None,
    flags: Mapping[str, Any] | None = None,
    config_path: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> KafkaConnection:
    """Bootstrap servers and security from flags, then environment, then the properties file."""
    env = os.environ if environ is None else environ
    config_path = config_path or env.get(CONFIG_ENV) or None
    file_broker, from_file = security_from_properties(config_path) if config_path else (None, {})
    values: dict[str, Any] = {}
    for name in (f.name for f in fields(KafkaSecurity)):
        flag = (flags or {}).get(name)
        from_env = env_value(_ENV[name], env)
        if flag is not None:
            values[name] = flag
        elif from_env is not None:
            values[name] = _bool(from_env, _ENV[name]) if name == "ssl_check_hostname" else from_env
        elif name in from_file:
            values[name] = from_file[name]
    for name in ("protocol", "sasl_mechanism"):
        if isinstance(values.get(name), str):
            values[name] = values[name].strip().upper()
    bootstrap = broker or env.get("KAFKA_BOOTSTRAP_SERVERS") or file_broker or DEFAULT_BROKER
    return KafkaConnection(bootstrap, KafkaSecurity(**values))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The security flags every Kafka-facing command takes (secrets only as files)."""
    group = parser.add_argument_group(
        "Kafka security (flags win over ENGAGE_KAFKA_* variables, which win over --kafka-config)"
    )
    group.add_argument(
        "--kafka-config", metavar="FILE",
        help=f"Kafka client properties file (bootstrap.servers, security.protocol, sasl.*, "
        f"ssl.* PEM locations); default ${CONFIG_ENV}",
    )
    group.add_argument("--kafka-security-protocol", choices=PROTOCOLS, type=str.upper,
                       help=f"default ${_ENV['protocol']} or PLAINTEXT")
    group.add_argument("--kafka-sasl-mechanism", choices=SASL_MECHANISMS, type=str.upper,
                       help=f"default ${_ENV['sasl_mechanism']}")
    group.add_argument("--kafka-sasl-username", help=f"default ${_ENV['sasl_username']}")
    group.add_argument(
        "--kafka-sasl-password-file", metavar="FILE",
        help=f"file holding the SASL password (default ${_ENV['sasl_password']} or "
        f"${_ENV['sasl_password']}_FILE)",
    )
    group.add_argument("--kafka-ssl-cafile", metavar="FILE",
                       help=f"CA bundle, PEM (default ${_ENV['ssl_cafile']}, else system CAs)")
    group.add_argument("--kafka-ssl-certfile", metavar="FILE",
                       help=f"client certificate for mutual TLS, PEM (${_ENV['ssl_certfile']})")
    group.add_argument("--kafka-ssl-keyfile", metavar="FILE",
                       help=f"its private key, PEM (${_ENV['ssl_keyfile']})")
    group.add_argument("--kafka-ssl-key-password-file", metavar="FILE",
                       help=f"file holding the key's password (${_ENV['ssl_key_password']}[_FILE])")
    group.add_argument(
        "--kafka-ssl-no-check-hostname", dest="kafka_ssl_check_hostname",
        action="store_const", const=False, default=None,
        help=f"do not match the broker's certificate to its host name "
        f"(${_ENV['ssl_check_hostname']}=false)",
    )
    env_of_flag = {**_ENV, "security_protocol": _ENV["protocol"], "config": CONFIG_ENV,
                   "sasl_password_file": _ENV["sasl_password"],
                   "ssl_key_password_file": _ENV["ssl_key_password"]}
    for action in group._group_actions:
        action.env = env_of_flag[action.dest.removeprefix("kafka_")]  # type: ignore[attr-defined]


def connection_from_args(args: argparse.Namespace) -> KafkaConnection:
    """The connection for a command parsed with `add_arguments` (and usually `--broker`),
    resolved once per command (a secret file may be a pipe that reads only once)."""
    resolved = getattr(args, "_kafka_connection", None)
    if isinstance(resolved, KafkaConnection):
        return resolved
    flags = {name: getattr(args, f"kafka_{name}", None) for name in _ENV}
    flags["protocol"] = getattr(args, "kafka_security_protocol", None)
    for secret, flag in _FILE_FLAGS.items():
        path = getattr(args, f"kafka_{flag}", None)
        if path:
            flags[secret] = read_secret_file(path, f"--kafka-{flag.replace('_', '-')}")
    connection = resolve_connection(
        getattr(args, "broker", None), flags, getattr(args, "kafka_config", None)
    )
    args._kafka_connection = connection
    return connection
