"""Loads the tests' shared support files by path, once per session under fixed module names.

tests/ is not a package, and a module named `inspect` would shadow the standard library's, so support files are
loaded by path; a fixed name in sys.modules makes every test file share one module and its memos (the tiny stores
and the checkpoint trained once per session).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

TESTS = Path(__file__).resolve().parent


def load(name: str, relative: str) -> ModuleType:
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, TESTS / relative)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def engine_conftest() -> ModuleType:
    """tests/engine/conftest.py: the tiny stores (fixtures `tiny_stores`, `engine_cache`) and scene builders."""
    return load("pmoe_tests_engine_conftest", "engine/conftest.py")


def reliability_conftest() -> ModuleType:
    """tests/reliability/conftest.py: REPO and the helpers that run pmoe in a subprocess."""
    return load("pmoe_tests_reliability_conftest", "reliability/conftest.py")


def inspect_support() -> ModuleType:
    """tests/inspect/support.py: the engine's tiny stores and one trained Point-MoE checkpoint per session."""
    return load("pmoe_tests_inspect_support", "inspect/support.py")
