"""examples/racecar_cifar_resnet.py: the seven table-5 models, a kill mid-run, resumed, cached."""

import json
import subprocess
import sys

from example_support import ROOT, check_outputs, run_example

# 64 images at batch 64: one step an epoch; phase I trains 2 epochs so a kill can fall inside it.
SMALL = ("--preset=tiny", "--train_images=64", "--test_images=50", "--epochs=2,1,1,1")
MODELS = ["Std_A", "RR20_A", "Std_AA", "RR20_AA", "Std_AB", "RR20_AB", "Std_B"]


def test_tiny_transfer_study_resumes_after_a_kill_and_is_cached(tmp_path):
    out = tmp_path / "transfer"
    # 1. Killed (os._exit, code 3) after the first epoch of the first run.
    first = run_example("racecar_cifar_resnet.py", out, *SMALL, "--stop_after_epochs=1",
                        expect=3)
    assert "Std_A seed 0: epoch 1/2" in first and "epoch 2/2" not in first
    backup = out / "runs" / "Std_A-seed0.backup"
    assert json.loads((backup / "training_metadata.json").read_text())["epoch"] == 1
    assert not (out / "results.json").exists()

    # 2. The same command continues at epoch 2 and trains everything else.
    second = run_example("racecar_cifar_resnet.py", out, *SMALL)
    assert "Std_A seed 0: resuming after epoch 1/2" in second
    assert "Std_A seed 0: epoch 1/2" not in second and "Std_A seed 0: epoch 2/2" in second
    assert not backup.exists()  # removed once the run's result was cached
    results = json.loads((out / "results.json").read_text())
    check_outputs(out, results, ("accuracy.png", "reconstructions.png"))
    assert list(results["results"]) == MODELS
    assert results["epochs"] == {"A": 2, "AA": 1, "AB": 1, "B": 1}
    std_a = results["runs"]["Std_A"][0]
    assert std_a["sessions"] == 2 and sorted(std_a["history"]) == ["1", "2"]
    assert [std_a["history"][e]["session"] for e in ("1", "2")] == [1, 2]
    epoch_log = json.loads((out / "runs" / "Std_A-seed0.epochs.json").read_text())
    assert sorted(epoch_log["machines"]) == ["1", "2"]
    assert "CPU cores" in epoch_log["machines"]["2"]
    for name in MODELS:
        assert 0.0 <= results["results"][name]["test_accuracy_mean"] <= 1.0
        assert results["runs"][name][0]["epochs_trained"] == (2 if name.endswith("_A") else 1)
    # All 20 points are constrained in RR20_A, none in Std_A; both are measured.
    for name in ("Std_A", "RR20_A"):
        assert len(results["results"][name]["layer_relative_error_mean"]) == 20
    history = {n: results["runs"][n][0]["history"]["1"] for n in ("Std_A", "RR20_A", "RR20_AB")}
    assert history["Std_A"]["racecar_loss"] == 0 and history["RR20_A"]["racecar_loss"] > 0
    assert "racecar_loss" not in history["RR20_AB"]  # phase II: the plain network
    assert set(results["comparisons"]) == {"RR20_A - Std_A", "RR20_AA - Std_AA",
                                           "RR20_AB - Std_AB"}

    # The BN-lag tool rebuilds the run from its settings: with the saved statistics it
    # measures exactly what the study reported.
    tool = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "batch_norm_lag.py"), f"--study={out}",
         "--runs=RR20_A-seed0", "--batches=1"], capture_output=True, text=True, timeout=300)
    assert tool.returncode == 0, tool.stderr[-3000:]
    lag = json.loads((out / "bn_lag.json").read_text())["entries"]
    (entry,) = lag.values()
    assert entry["after_epoch"] == 2 and len(entry["moving_over_recomputed_variance"]) == 19
    assert abs(entry["test_accuracy_saved_statistics"]
               - results["runs"]["RR20_A"][0]["test_accuracy"]) < 1e-6

    # 3. Another invocation trains nothing and writes the same results.
    again = run_example("racecar_cifar_resnet.py", out, *SMALL)
    assert again.count(": cached") == 7 and ": epoch " not in again
    assert json.loads((out / "results.json").read_text())["results"] == results["results"]
    assert results["complete"] and results["missing_runs"] == []

    # 4. --report_only trains nothing: seed 1 has not run, so seed 0 is reported alone.
    report = run_example("racecar_cifar_resnet.py", out, *SMALL, "--seeds=0,1", "--report_only")
    assert "seed 1: 7 of 7 runs not finished yet" in report and ": epoch " not in report
    partial = json.loads((out / "results.json").read_text())
    assert partial["seeds"] == [0] and not partial["complete"]
    assert partial["missing_runs"] == [f"{name}-seed1" for name in MODELS]
    nothing = run_example("racecar_cifar_resnet.py", out, *SMALL, "--seeds=1", "--report_only",
                          expect=1)
    assert "--report_only: no seed of this study has finished" in nothing

    # 5. Another λ retrains the racecar models only: no Std run depends on it.
    other = run_example("racecar_cifar_resnet.py", out, *SMALL, "--racecar_weight=0.5")
    assert other.count(": cached") == 4 and "RR20_A seed 0: epoch 2/2" in other
    assert "Std_A seed 0: epoch" not in other
    assert json.loads((out / "results.json").read_text())["settings"]["racecar_weight"] == 0.5


def test_bad_epochs_name_the_flag(tmp_path):
    printed = run_example("racecar_cifar_resnet.py", tmp_path, *SMALL[:3], "--epochs=2,1",
                          expect=1)
    assert "--epochs needs 4 values" in printed


def test_the_papers_vgg_at_a_reduced_width(tmp_path):
    out = tmp_path / "vgg"
    printed = run_example("racecar_cifar_resnet.py", out, *SMALL, "--network=vgg",
                          "--width=0.0625")
    assert "racecar CIFAR VGG (table 11)" in printed
    results = json.loads((out / "results.json").read_text())
    names = [name.replace("RR20", "RR13") for name in MODELS]
    assert list(results["results"]) == names
    assert results["network"] == "vgg" and results["settings"]["width"] == 0.0625
    for name in ("Std_A", "RR13_A"):  # the 13 convolution inputs
        assert len(results["results"][name]["layer_relative_error_mean"]) == 13
    history = results["runs"]["RR13_A"][0]["history"]["1"]
    assert history["racecar_loss"] > 0 and "racecar_loss" not in results["runs"]["RR13_AB"][0][
        "history"]["1"]
    assert results["results"]["RR13_AB"]["paper_table5_mean_std"] == [0.276, 0.0138]
    assert set(results["comparisons"]) == {"RR13_A - Std_A", "RR13_AA - Std_AA",
                                           "RR13_AB - Std_AB"}
    check_outputs(out, results, ("accuracy.png", "reconstructions.png"))


def test_a_diverged_run_stops_the_study_and_restarts_afresh(tmp_path):
    out = tmp_path / "diverged"
    # Two steps an epoch, the second at lr 1e38 unclipped: its loss is NaN.
    printed = run_example("racecar_cifar_resnet.py", out, "--preset=tiny", "--train_images=256",
                          "--test_images=50", "--epochs=2,1,1,1", "--learning_rate=1e38",
                          "--warmup_epochs=0", "--clipnorm=0", expect=1)
    assert "Std_A seed 0: the loss diverged to NaN in epoch" in printed
    assert "--clipnorm (now none)" in printed
    runs = out / "runs"
    assert (runs / "Std_A-seed0.diverged.epochs.json").exists()
    assert not (runs / "Std_A-seed0.backup").exists() and not (out / "results.json").exists()
