"""Real purchase histories for research: CDNOW, as shipped inside a pinned PyPI wheel.

The `lifetimes` package (MIT) ships the CDNOW data of Fader & Hardie: CD purchases of
customers who first bought in Q1 1997, followed to June 1998 — `CDNOW_sample.txt` (2,357
customers, 6,919 rows), `CDNOW_master.txt` (23,570 customers) and the published 39-week
calibration summary `cdnow_customers_summary.csv`. We do not vendor the files (their data
carries no licence of its own); this module fetches the pinned wheel with pip, from the same
registry the project installs from, checks the wheel's and each file's SHA-256, and caches
the files under var/datasets/. `python -m benchmarks.datasets` prefetches them (e.g. in CI).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from streams.purchase_file import Purchase, PurchaseFileError, read_purchases

CACHE = Path(__file__).resolve().parents[1] / "var" / "datasets"
REQUIREMENT = "lifetimes==0.11.3"
WHEEL = "Lifetimes-0.11.3-py3-none-any.whl"
WHEEL_SHA256 = "261e3dc89977c2b60767ca6728aaa29d429de0c814635070a749c36555895da8"
FILES = {
    "CDNOW_sample.txt": "6fae10155c0b0ba363c2c386e30f77990d22328220efd862a5edd1443420d94a",
    "CDNOW_master.txt": "eff6889ed364c5199d6eacbbeb7a6d559971df4406ac876f322c373f00a072ef",
    "cdnow_customers_summary.csv": (
        "09d92ca80daaabe8be0f997d4c539f9c9606106baa5b199081fe01cbce5fa9f6"
    ),
}


class DatasetError(RuntimeError):
    """The data set could not be fetched or failed its checksum."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _download_wheel(into: Path) -> bytes:
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
        "--only-binary=:all:", "--dest", str(into), REQUIREMENT,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wheel = into / WHEEL
    if done.returncode != 0 or not wheel.exists():
        raise DatasetError(f"pip download {REQUIREMENT} failed: {done.stderr.strip()[-500:]}")
    data = wheel.read_bytes()
    if _sha256(data) != WHEEL_SHA256:
        raise DatasetError(f"{WHEEL}: SHA-256 mismatch (expected {WHEEL_SHA256})")
    return data


def dataset_path(name: str, cache: Path = CACHE) -> Path:
    """The local path of one of FILES, fetched and verified on first use."""
    if name not in FILES:
        raise KeyError(f"unknown data set {name!r}: one of {sorted(FILES)}")
    target = cache / name
    if target.exists() and _sha256(target.read_bytes()) == FILES[name]:
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        _download_wheel(Path(tmp))
        with zipfile.ZipFile(Path(tmp) / WHEEL) as wheel:
            for member, digest in FILES.items():
                data = wheel.read(f"lifetimes/datasets/{member}")
                if _sha256(data) != digest:
                    raise DatasetError(f"{member}: SHA-256 mismatch (expected {digest})")
                partial = cache / f"{member}.part"
                partial.write_bytes(data)
                partial.replace(cache / member)
    return target


def load_cdnow(name: str = "CDNOW_sample.txt", cache: Path = CACHE) -> list[Purchase]:
    """Rows of a CDNOW transaction file, in file order (streams/purchase_file.py reads the
    layout: the sample's five columns, the master's four)."""
    try:
        return read_purchases(dataset_path(name, cache))
    except PurchaseFileError as exc:
        raise DatasetError(str(exc)) from None


def load_cdnow_summary(cache: Path = CACHE) -> list[tuple[int, float, float]]:
    """The published calibration summary, weeks: (frequency x, recency t_x, age T) per customer."""
    lines = dataset_path("cdnow_customers_summary.csv", cache).read_text().splitlines()
    out = []
    for line in lines[1:]:
        _customer, x, t_x, big_t = line.split(",")
        out.append((int(x), float(t_x), float(big_t)))
    return out


def main() -> None:
    for name in FILES:
        print(dataset_path(name))


if __name__ == "__main__":
    main()
