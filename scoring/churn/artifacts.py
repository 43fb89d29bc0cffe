"""Signed model artifacts: nothing is unpickled before its HMAC-SHA256 signature checks out.

Layout: MAGIC, one line of canonical JSON metadata (including `payload_sha256`), a newline,
then the pickled model. The signature covers the metadata line and the payload; it lives in
the metadata as `signature` and is removed before recomputing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
from collections.abc import Callable
from typing import Any

MAGIC = b"ENGAGE-MODEL/1\n"


class ArtifactRejected(ValueError):
    """An artifact that must not be loaded; `reason` is a metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"model artifact refused ({reason}): {detail}")
        self.reason = reason
        self.detail = detail


def _canonical(meta: dict[str, Any]) -> bytes:
    return json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()


def _mac(key: bytes, meta: dict[str, Any], payload: bytes) -> str:
    return hmac.new(key, _canonical(meta) + b"\n" + payload, hashlib.sha256).hexdigest()


def sign_artifact(model: Any, meta: dict[str, Any], key: bytes) -> bytes:
    payload = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    body = dict(meta, payload_sha256=hashlib.sha256(payload).hexdigest())
    body["signature"] = _mac(key, body, payload)
    return MAGIC + _canonical(body) + b"\n" + payload


def read_metadata(blob: bytes) -> dict[str, Any]:
    """The metadata alone (unverified; for listing, never for loading)."""
    if not blob.startswith(MAGIC):
        raise ArtifactRejected("unsigned", "not an engage model artifact (no header)")
    line, sep, _ = blob[len(MAGIC) :].partition(b"\n")
    if not sep:
        raise ArtifactRejected("malformed", "no metadata line")
    try:
        meta = json.loads(line)
    except ValueError as exc:
        raise ArtifactRejected("malformed", f"metadata is not JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise ArtifactRejected("malformed", "metadata is not a JSON object")
    return meta


def load_artifact(
    blob: bytes, key: bytes, check: Callable[[dict[str, Any]], str | None] | None = None
) -> tuple[Any, dict[str, Any]]:
    """Verify, then unpickle. Raises ArtifactRejected before touching pickle on any doubt;
    `check` may refuse the verified metadata (reason `layout`: a model trained on features
    this release does not compute, see scoring.churn.layout)."""
    meta = read_metadata(blob)
    payload = blob[len(MAGIC) :].partition(b"\n")[2]
    signature = meta.pop("signature", None)
    if not isinstance(signature, str):
        raise ArtifactRejected("unsigned", "metadata carries no signature")
    if not signature.isascii():
        raise ArtifactRejected("bad_signature", "signature is not a hex digest")
    if not hmac.compare_digest(signature, _mac(key, meta, payload)):
        raise ArtifactRejected("bad_signature", "signature does not match (tampered or wrong key)")
    if hashlib.sha256(payload).hexdigest() != meta.get("payload_sha256"):
        raise ArtifactRejected("bad_signature", "payload digest mismatch")
    problem = check(meta) if check is not None else None
    if problem is not None:
        raise ArtifactRejected("layout", f"{meta.get('name')} v{meta.get('version')}: {problem}")
    return pickle.loads(payload), meta
