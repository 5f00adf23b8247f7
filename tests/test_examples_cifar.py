"""The CIFAR example scripts (RN table 2, RN fig. 3b, racecar table 5) end to end, tiny."""

import json

from example_support import PNG_MAGIC, check_outputs, run_example


def _check_common(out, results, pngs):
    assert results["seeds"] == [0]
    check_outputs(out, results, pngs)


def test_rn_cifar_tiny_resumes_and_feeds_rnl_latent(tmp_path):
    out = tmp_path / "rn"
    printed = run_example("rn_cifar.py", out, "--preset=tiny")
    assert "wrote" in printed and "rn_baseline" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["epochs"] == 1 and results["train_images"] == 256
    _check_common(out, results, ("reconstructions.png", "errors.png"))
    rows = results["results"]["rn_baseline"]["plain"]
    assert set(rows) == {"std", "rn", "rnl"}
    for variant, paper in (("std", 20.18), ("rn", 13.62), ("rnl", 13.62)):  # RN table 2, C10
        r = rows[variant]
        assert 0.0 <= r["test_error_percent_mean"] <= 100.0
        assert r["paper_error_percent"] == paper
        assert r["reconstruction_mse"][0] >= 0 and r["seconds_per_step"][0] > 0
    # The variants train different losses: racecar only for rn/rnl, latent only for rnl.
    losses = {v: json.loads((out / "runs" / f"rn_baseline-{v}-plain-seed0.json").read_text())
              ["result"]["train_loss_last_epoch"] for v in ("std", "rn", "rnl")}
    assert losses["std"]["racecar_loss"] == 0 and losses["rn"]["racecar_loss"] > 0
    assert "latent_loss" not in losses["rn"] and losses["rnl"]["latent_loss"] > 0
    again = run_example("rn_cifar.py", out, "--preset=tiny")
    assert again.count(": cached") == 3

    # rnl_latent.py on the RN + RNL weights rn_cifar.py saved: no training.
    latent_out = tmp_path / "rnl"
    weights = out / "runs" / "rn_baseline-rnl-plain-seed0.keras"
    printed = run_example("rnl_latent.py", latent_out, "--preset=tiny", f"--model={weights}",
                   "--num_images=40", "--num_shown=3")
    assert "training" not in printed
    latent = json.loads((latent_out / "results.json").read_text())
    assert latent["trained_here"] is False and latent["model_weights"] == str(weights)
    stats = latent["results"]
    assert stats["images"] == 40
    for key in ("accuracy_of_o", "hard_sample_rate", "mean_p_true_of_o", "mean_p_true_of_o_hat"):
        assert 0.0 <= stats[key] <= 1.0, key
    assert (latent_out / "latent_generation.png").read_bytes()[:8] == PNG_MAGIC


def test_rnl_latent_trains_when_no_model_is_given_and_resumes(tmp_path):
    out = tmp_path / "rnl"
    flags = ("--preset=tiny", "--train_images=128", "--num_images=20", "--num_shown=2")
    printed = run_example("rnl_latent.py", out, *flags)
    assert "training rn_baseline with RNL" in printed and "hard_sample_rate" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["trained_here"] is True and results["epochs"] == 1
    _check_common(out, results, ("latent_generation.png",))
    again = run_example("rnl_latent.py", out, *flags)
    assert again.count(": cached") == 1
    assert json.loads((out / "results.json").read_text())["results"] == results["results"]


def test_racecar_cifar_tiny_and_resumes(tmp_path):
    out = tmp_path / "racecar"
    printed = run_example("racecar_cifar.py", out, "--preset=tiny")
    assert "wrote" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["epochs"] == {"A": 1, "AA": 1, "AB": 1, "B": 1}
    assert results["task_A"]["classes"] == [0, 1, 2, 3, 4]
    assert results["task_B"]["classes"] == [5, 6, 7, 8, 9]
    _check_common(out, results, ("accuracy.png", "reconstructions.png"))
    names = ["Std_A", "RR13_A", "Std_AA", "RR13_AA", "Std_AB", "RR13_AB", "Std_B"]
    assert list(results["results"]) == names  # table 5's column order
    for name in names:
        r = results["results"][name]
        assert 0.0 <= r["test_accuracy_mean"] <= 1.0
        assert len(r["paper_table5_mean_std"]) == 2
    assert results["results"]["RR13_AA"]["paper_table5_mean_std"][0] == 0.856
    for name in ("Std_A", "RR13_A"):
        assert len(results["results"][name]["layer_relative_error_mean"]) == 13
        assert len(results["results"][name]["layer_relative_error_mean_inference"]) == 13
    again = run_example("racecar_cifar.py", out, "--preset=tiny")
    assert again.count(": cached") == 7
    assert json.loads((out / "results.json").read_text())["results"] == results["results"]


def test_rn_cifar_reports_a_diverged_run(tmp_path):
    out = tmp_path / "diverged"
    printed = run_example("rn_cifar.py", out, "--preset=tiny", "--variants=rn",
                          "--learning_rate=1e8")
    assert "the loss diverged to NaN" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["results"]["rn_baseline"]["plain"]["rn"]["diverged"] == [True]
    assert results["settings"]["clipnorm"] is None
    norms = results["results"]["rn_baseline"]["plain"]["rn"]["gradient_norm_at_init"][0]
    assert norms["task"] > 0 and norms["rn"] > 0


def test_vit_cifar_tiny_trains_both_variants_and_resumes(tmp_path):
    out = tmp_path / "vit"
    printed = run_example("vit_cifar.py", out, "--preset=tiny")
    assert "std / racecar reconstruction MSE" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["epochs"] == 1 and results["train_images"] == 256
    _check_common(out, results, ("regenerated_inputs.png",))
    runs = {r["variant"]: r for r in results["runs"]}
    assert runs["std"]["racecar_weight"] == 0.0 and runs["racecar"]["racecar_weight"] > 0
    for r in runs.values():
        assert 0.0 <= r["test_accuracy"] <= 1.0 and r["reconstruction_mse"] > 0
    assert results["reconstruction_mse_ratio_std_over_racecar"] == (
        runs["std"]["reconstruction_mse"] / runs["racecar"]["reconstruction_mse"])
    again = run_example("vit_cifar.py", out, "--preset=tiny")
    assert again.count(": cached") == 2
