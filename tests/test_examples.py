"""The MI and MNIST example scripts (racecar §4 and §5.1) run end to end at a tiny setting."""

import json
import subprocess
import sys

from example_support import ROOT, check_outputs, run_example


def test_racecar_mi_tiny_and_resumes(tmp_path):
    out = tmp_path / "mi"
    printed = run_example("racecar_mi.py", out, "--preset=tiny")
    assert "Table 1 layout" in printed and "Table 2 layout" in printed and "headline" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["epochs"] == 4 and results["epochs_b"] == 4 and results["seeds"] == [0]
    names = ["Ort_A", "RR1_A", "RR6_A", "Std_A", "Ort_AA", "RR1_AA", "RR6_AA", "Std_AA",
             "Ort_AB", "RR1_AB", "RR6_AB", "Std_AB", "Std_B"]
    assert sorted(results["results"]) == sorted(names)
    for name in names:
        r = results["results"][name]
        assert 0.0 <= r["test_accuracy_mean"] <= 1.0 and len(r["paper_mean_std"]) == 2
        plane = results["information_planes"][name]
        assert [p["epoch"] for p in plane] == [0, 2, 4]
        for i_xl, i_ly in plane[-1]["layers"]:
            assert 0 <= i_ly <= i_xl <= 12 + 1e-9  # 4096 patterns: I(X;L) <= 12 bits
    for name in ("Std_A", "Ort_A", "RR1_A", "RR6_A"):
        assert len(results["results"][name]["layer_relative_error_mean"]) == 6
    assert results["mi_estimator"]["bins"] == 30
    assert set(results["headline"]) >= {"Std_AB", "RR6_AB", "holds"}
    check_outputs(out, results, ["mi_planes_phase1.png", "mi_planes_AA.png", "mi_planes_AB.png",
                       "accuracy.png", "reconstructions.png", "images/RR6_A-seed0_epoch4.png"])
    # A second run finds every model finished and trains nothing.
    again = run_example("racecar_mi.py", out, "--preset=tiny")
    assert again.count(": cached") == 13 and "epoch 4/4" not in again


def test_racecar_mi_rejects_an_evaluation_period_that_does_not_divide(tmp_path):
    cmd = [sys.executable, str(ROOT / "examples" / "racecar_mi.py"), f"--out={tmp_path}",
           "--preset=tiny", "--eval_every=3"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode != 0 and "--eval_every=3 must be >= 1 and divide" in proc.stderr
    assert not (tmp_path / "results.json").exists()


def test_racecar_mnist_tiny_and_resumes(tmp_path):
    out = tmp_path / "mnist"
    tiny = ("--preset=tiny", "--source=local", "--epochs_a=2")
    # A kill after Std_A's first epoch of two: the rerun resumes after it.
    stopped = run_example("racecar_mnist.py", out, *tiny, "--stop_after_epochs=1", expect=3)
    assert "Std_A seed 0: epoch 1/2" in stopped and "exiting after epoch 1" in stopped
    nothing = run_example("racecar_mnist.py", out, *tiny, "--report_only", expect=1)
    assert "--report_only: no seed of this study has finished" in nothing
    printed = run_example("racecar_mnist.py", out, *tiny)
    assert "Std_A seed 0: resuming after epoch 1/2" in printed
    assert "Std_A seed 0: epoch 1/2" not in printed and "Std_A seed 0: epoch 2/2" in printed
    assert "Table 3 layout" in printed and "Table 4 layout" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["scale"]["train_images"] == 256 and results["seeds"] == [0]
    assert results["complete"] and results["missing_runs"] == []
    names = ["Ort_A", "Std_A", "RR3_A", "Ort_AA", "Std_AA", "RR3_AA",
             "Ort_AB", "Std_AB", "RR3_AB", "Std_B"]
    assert sorted(results["results"]) == sorted(names)
    for name in ("Ort_A", "Std_A", "RR3_A"):
        r = results["results"][name]
        assert r["seconds_per_epoch"][0] > 0
        s = r["first_layer_singular_values"][0]
        assert len(s) == 9 and s == sorted(s, reverse=True)
    assert len(results["results"]["Ort_A"]["late_gain"]) == 1
    assert results["rr3_over_std_seconds_per_epoch"] > 0
    first = json.loads((out / "runs" / "Std_A-seed0.json").read_text())["result"]
    assert first["sessions"] == 2 and [e for e, _ in first["curve"]] == [1, 2]
    assert not (out / "runs" / "Std_A-seed0.backup").exists()  # removed once cached
    check_outputs(out, results, ["regenerated_inputs.png", "first_layer_svd.png", "accuracy.png",
                       "images/RR3_A-seed0_epoch2.png"])
    again = run_example("racecar_mnist.py", out, *tiny)
    assert again.count(": cached") == 10
    # Seed 1 has not run: --report_only reports seed 0 and lists seed 1's ten runs as missing.
    report = run_example("racecar_mnist.py", out, *tiny, "--seeds=0,1", "--report_only")
    assert "seed 1: 10 of 10 runs not finished yet" in report
    results = json.loads((out / "results.json").read_text())
    assert results["seeds"] == [0] and not results["complete"]
    assert sorted(results["missing_runs"]) == sorted(f"{n}-seed1" for n in names)
