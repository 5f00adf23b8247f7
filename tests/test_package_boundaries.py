"""The installed library holds the library: it never imports the example or benchmark plumbing.

The scripts' helpers live beside the scripts (``examples/common/``,
``benchmarks/measure.py``) and are not in the wheel; a library module that
imported one would work in the repository and fail once installed.
"""

import ast
import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("keras_reversible", "zoo")
# Top-level names of the scripts' folders and of the helpers found beside the scripts.
PLUMBING = {"examples", "benchmarks", "common", "measure"}
# The library modules they replaced: gone for good.
REMOVED = {"keras_reversible.experiment", "keras_reversible.benchmark"}


def _modules():
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def _imported(source, package):
    """Every module name ``source`` imports, at any depth (``from a import b`` gives a and a.b).

    ``package``: the dotted package the module is in, to resolve relative imports.
    """
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _plumbing(name):
    return name.split(".")[0] in PLUMBING or any(
        name == removed or name.startswith(removed + ".") for removed in REMOVED)


def test_every_library_module_is_checked():
    modules = {str(p.relative_to(ROOT)) for p in _modules()}
    assert "keras_reversible/files.py" in modules and "zoo/__init__.py" in modules


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_library_module_imports_no_plumbing(path):
    package = ".".join(path.relative_to(ROOT).parts[:-1])
    bad = sorted(name for name in _imported(path.read_text(), package) if _plumbing(name))
    assert not bad, f"{path.relative_to(ROOT)} imports example/benchmark plumbing: {bad}"


def test_the_checker_catches_plumbing_imports():
    source = ("import common.experiment\nfrom keras_reversible import experiment, files\n"
              "from . import benchmark\nfrom .data import cache\ndef f():\n    import measure\n")
    names = _imported(source, "keras_reversible")
    assert "keras_reversible.data.cache" in names and "keras_reversible.files" in names
    assert sorted(n for n in names if _plumbing(n)) == [
        "common.experiment", "keras_reversible.benchmark", "keras_reversible.experiment",
        "measure"]


def test_plumbing_modules_are_not_in_the_package():
    for name in REMOVED:
        path = ROOT.joinpath(*name.split("."))
        assert not path.with_suffix(".py").exists() and not path.is_dir(), name
    assert (ROOT / "examples" / "common" / "experiment.py").is_file()
    assert (ROOT / "benchmarks" / "measure.py").is_file()


def test_importing_the_whole_library_loads_no_plumbing():
    """Every library module imported with the scripts' folders on sys.path: none of theirs loads."""
    folders = (str(ROOT / "examples"), str(ROOT / "benchmarks"))
    code = f"""
import importlib, json, pkgutil, sys
sys.path[:0] = {list(folders)!r}
import keras_reversible, zoo
walked = []
for package in (keras_reversible, zoo):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not info.name.endswith("__main__"):
            walked.append(importlib.import_module(info.name).__name__)
loaded = sorted(name for name, m in list(sys.modules.items())
                if (getattr(m, "__file__", None) or "").startswith({folders!r}))
print("RESULT " + json.dumps({{"walked": walked, "loaded": loaded}}))
"""
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    assert {"keras_reversible.files", "keras_reversible.data.cache"} <= set(result["walked"])
    assert result["loaded"] == [], f"the library loaded script plumbing: {result['loaded']}"


def test_no_test_module_imports_another_test_module():
    # Bazel gives each test_*.py its own target with the helpers beside it but not the
    # other tests, so a test that imports test_x passes under pytest and fails under bazel.
    offenders = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        names = _imported(path.read_text(), "")
        offenders += [f"{path.name} imports {n}" for n in names
                      if n.split(".")[0].startswith("test_")]
    assert not offenders, "move shared test code into a helper module: " + "; ".join(offenders)
