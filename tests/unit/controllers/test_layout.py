"""The layout of the controller manager: one controller per module in a subpackage of
what it looks after, the shared helpers in controllers.common, and no controller module
importing another's (what two controllers share belongs in controllers.common)."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import controllers
from controllers.main import CONTROLLERS
from skiff.client.controller import Controller

ROOT = Path(controllers.__file__).parent
CONTROLLER_PACKAGES = ("workloads", "nodes", "gc", "services")


def modules(package: str) -> list[str]:
    path = ROOT / package
    return [f"controllers.{package}.{m.name}" for m in pkgutil.iter_modules([str(path)])]


def controllers_imported(module: str) -> set[str]:
    """The controllers.* modules `module` imports."""
    source = inspect.getsource(importlib.import_module(module))
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found |= {n for n in names if n.startswith("controllers.")}
    return found


def test_controller_modules_import_only_the_shared_helpers() -> None:
    for package in CONTROLLER_PACKAGES:
        for module in modules(package):
            others = {n for n in controllers_imported(module)
                      if not n.startswith("controllers.common")}
            assert not others, f"{module} imports {sorted(others)}"


def test_the_shared_helpers_import_no_controller() -> None:
    for module in modules("common"):
        assert all(n.startswith("controllers.common") for n in controllers_imported(module))


def test_each_controller_module_holds_one_controller_and_each_is_run() -> None:
    run = {make for loops in CONTROLLERS.values() for make in loops}
    found = []
    for package in CONTROLLER_PACKAGES:
        for module in modules(package):
            mod = importlib.import_module(module)
            classes = [c for c in vars(mod).values() if inspect.isclass(c)
                       and issubclass(c, Controller) and c.__module__ == module]
            assert len(classes) == 1, f"{module}: {classes}"
            found += classes
    assert set(found) == run
