"""The architecture, checked: the core imports no shell, sink or I/O library, the layers
point one way (import-linter contracts in pyproject.toml), every module imports on its own
(no import cycle hides behind an import order), and the generated docs are up to date."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("scoring", "streams", "sinks", "simulator")


def test_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_every_module_imports_alone_in_a_fresh_interpreter() -> None:
    modules = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for package in PACKAGES for p in (ROOT / package).rglob("*.py")
    )
    assert len(modules) > 50
    script = f"""
import importlib, sys
failed = []
for name in {modules!r}:
    for loaded in [m for m in sys.modules if m.split(".")[0] in {PACKAGES!r}]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed.append(f"{{name}}: {{type(exc).__name__}}: {{exc}}")
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]


def test_generated_docs_are_up_to_date() -> None:
    from streams.docgen import main

    assert main(["--check"]) == 0
