"""The core never imports the frameworks it is adapted to (kfp, kserve, feast)."""

import pkgutil
import subprocess
import sys

import creditops

ADAPTED = ("kfp", "kserve", "feast")


def test_core_modules_do_not_import_frameworks() -> None:
    modules = [
        m.name for m in pkgutil.walk_packages(creditops.__path__, "creditops.") if m.name != "creditops.cli"
    ]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(','.join(sorted(k for k in sys.modules if k.split('.')[0] in {ADAPTED!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"core imported: {out.stdout.strip()}"
    assert len(modules) > 10
