"""The tiny data dir of the top-level tests' conftest, importable by name from this folder."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "speechvq_tests_conftest", Path(__file__).resolve().parent.parent / "conftest.py")
_top = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_top)
write_tiny_data_dir = _top.write_tiny_data_dir
