"""Running and importing the example (and benchmark) scripts; the checks their outputs share."""

import importlib
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def import_from(folder, module):
    """``import module`` as the scripts in ``<repo>/<folder>`` do (``examples`` or ``benchmarks``).

    The scripts' helpers (``examples/common``, ``benchmarks/measure.py``) are not part of the
    installed library: a script finds them beside itself, so the folder goes on ``sys.path``.
    """
    path = str(ROOT / folder)
    if path not in sys.path:
        sys.path.insert(0, path)
    return importlib.import_module(module)


def run_example(script, out, *flags, env=None, expect=0):
    """Runs ``examples/<script> --out=<out> <flags>``; fails unless it exits with ``expect``.

    Returns its stdout, and its stderr after it when ``expect`` is not 0 (absl
    prints usage errors there).
    """
    cmd = [sys.executable, str(ROOT / "examples" / script), f"--out={out}", *flags]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    assert proc.returncode == expect, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout if expect == 0 else proc.stdout + proc.stderr


def check_outputs(out, results, pngs):
    """results.json names its command and versions; the PNGs are PNGs; no temporary file is left."""
    assert results["command"]
    assert "tensorflow" in results["versions"] and "keras" in results["versions"]
    for png in pngs:
        assert (out / png).read_bytes()[:8] == PNG_MAGIC, png
    assert not list(out.rglob(".*.tmp")), "a temporary file was left behind"
