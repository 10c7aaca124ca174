"""The core and the controllers never import tkinter (ARCHITECTURE.md, STYLE.md)."""
import pkgutil
import subprocess
import sys

import raabin_labeler

SCRIPT = r"""
import importlib, pkgutil, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name in ("tkinter", "_tkinter") or name.startswith("tkinter."):
            raise ImportError("tkinter is blocked below ui/")
sys.meta_path.insert(0, Block())
import raabin_labeler
for pkg in ("raabin_labeler.core", "raabin_labeler.app"):
    mod = importlib.import_module(pkg)
    for info in pkgutil.walk_packages(mod.__path__, pkg + "."):
        importlib.import_module(info.name)
        print(info.name)
import raabin_labeler.cli
raabin_labeler.cli.build_parser()
"""


def test_core_and_app_import_without_tkinter():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    imported = set(result.stdout.split())
    core_modules = {info.name for info in pkgutil.walk_packages(
        [str(p) for p in raabin_labeler.__path__], "raabin_labeler.") if info.name.startswith("raabin_labeler.core.")}
    assert core_modules <= imported
    assert "raabin_labeler.core.store" in imported
