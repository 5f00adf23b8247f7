"""The slim install: the core needs tensorflow, keras and numpy only, and the wheel is complete.

Offline: the wheel is built from a copy of the sources without build
isolation (setuptools is already installed) and installed with ``--no-deps``.
"""

import configparser
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
CORE = {"tensorflow", "keras", "numpy"}
# What the extras bring; tensorflow itself already requires absl-py and tensorboard.
EXTRAS_ONLY = ("matplotlib", "scipy", "tensorflow_datasets", "phi", "phiml", "keras_hub")
PACKAGES = ("keras_reversible", "zoo")


def _quick_start():
    """The README's Quick start section: its python blocks, joined."""
    text = (ROOT / "README.md").read_text()
    section = re.search(r"^## Quick start\n(.*?)^## ", text, flags=re.S | re.M)
    assert section, "README.md lost its '## Quick start' section"
    blocks = re.findall(r"```python\n(.*?)```", section.group(1), flags=re.S)
    assert blocks, "the Quick start has no python block"
    return "\n".join(blocks)


def _run_blocking_extras(code, cwd, pythonpath=None):
    """Runs ``code`` in a fresh interpreter whose imports of the extras fail."""
    blocker = textwrap.dedent(f"""
        import importlib.abc, sys
        BLOCKED = {EXTRAS_ONLY!r}

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"{{name}} is blocked: an extra, not a core dependency")
                return None

        sys.meta_path.insert(0, Block())
    """)
    check = textwrap.dedent(f"""
        leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        assert not leaked, leaked
        print("core-only OK")
    """)
    env = {"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3", "HOME": str(cwd)}
    if pythonpath:
        env["PYTHONPATH"] = str(pythonpath)
    proc = subprocess.run([sys.executable, "-c", blocker + code + check], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "core-only OK" in proc.stdout
    return proc.stdout


def _preset_files():
    """The wheel paths of every preset's weight file, as the registry names them."""
    import zoo

    return {f"zoo/weights/{zoo.info(m).presets[p].file}"
            for m, p in (name.split("/") for name in zoo.list_presets())}


def test_install_requires_is_the_core_only():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    requires = [r for r in config["options"]["install_requires"].split("\n") if r.strip()]
    assert {re.split(r"[<>=!~ ]", r.strip())[0] for r in requires} == CORE


def test_quick_start_runs_without_the_extras(tmp_path):
    printed = _run_blocking_extras(
        "import keras_reversible, zoo\n" + _quick_start(), cwd=tmp_path)
    assert "['accuracy', 'loss', 'racecar_loss', 'task_loss']" in printed


def test_the_blocker_blocks(tmp_path):
    # The check above can fail: importing an extra in that interpreter raises.
    with pytest.raises(AssertionError, match="blocked"):
        _run_blocking_extras("import scipy\n", cwd=tmp_path)


def test_wheel_is_complete_and_runs_the_quick_start_outside_the_repo(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, source / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "-q", "-w", str(dist), str(source)],
        capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = dist.glob("keras_reversible-*.whl")

    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        metadata = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    expected = {str(p.relative_to(ROOT)) for package in PACKAGES
                for p in (ROOT / package).rglob("*.py")}
    expected.add("keras_reversible/data/var_u.mat")
    presets = _preset_files()
    assert presets, "the registry lists no preset"
    expected.update(presets)
    assert expected - names == set(), f"missing from the wheel: {sorted(expected - names)}"
    requires = re.findall(r"^Requires-Dist: (.*)$", metadata, flags=re.M)
    core = [r for r in requires if "extra ==" not in r]
    assert {re.split(r"[<>=!~ ;]", r)[0] for r in core} == CORE, core
    assert {"examples", "smoke", "hub", "test", "all"} <= set(
        re.findall(r"^Provides-Extra: (.*)$", metadata, flags=re.M))

    site = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
         "--target", str(site), str(wheel)], capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = textwrap.dedent(f"""
        import keras_reversible, zoo
        assert keras_reversible.__file__.startswith({str(site)!r}), keras_reversible.__file__
        assert zoo.__file__.startswith({str(site)!r}), zoo.__file__
        import pathlib
        from keras_reversible import data
        assert (pathlib.Path(data.__file__).parent / "var_u.mat").stat().st_size == 1003
        try:  # reading it needs scipy, an extra: the error says which
            data.load_mi_sphere(seed=0)
        except ImportError as err:
            assert "keras-reversible[examples]" in str(err), err
        else:
            raise AssertionError("load_mi_sphere ran without scipy")
        from zoo import pretrained
        for name in zoo.list_presets():  # every preset loads from the installed package
            model, preset = name.split("/")
            assert str(pretrained.weights_file(zoo.info(model).presets[preset])).startswith(
                {str(site)!r})
            zoo.get(model, weights=preset)
    """) + _quick_start()
    _run_blocking_extras(code, cwd=elsewhere, pythonpath=site)
