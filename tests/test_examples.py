"""Each example script runs end to end at a tiny setting."""

import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run(script, out, *flags):
    cmd = [sys.executable, str(ROOT / "examples" / script), f"--out={out}", *flags]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_racecar_mi_tiny_and_resumes(tmp_path):
    out = tmp_path / "mi"
    printed = _run("racecar_mi.py", out, "--preset=tiny", "--eval_every=1")
    assert "wrote" in printed and "Std_A" in printed and "RR6_A" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["epochs"] == 3 and results["seeds"] == [0]
    for name in ("Std_A", "RR6_A"):
        r = results["results"][name]
        assert 0.0 <= r["test_accuracy_mean"] <= 1.0
        assert r["reconstruction_mse"][0] >= 0
        assert len(r["paper_table1_mean_std"]) == 2
        assert len(r["layer_relative_error_mean"]) == 6
    assert "tensorflow" in results["versions"] and results["command"]
    for png in ("reconstructions.png", "accuracy.png"):
        assert (out / png).read_bytes()[:8] == PNG_MAGIC
    # A second run finds every model finished and trains nothing.
    again = _run("racecar_mi.py", out, "--preset=tiny", "--eval_every=1")
    assert again.count(": cached") == 2
    assert not list(out.rglob(".*.tmp")), "a temporary file was left behind"
