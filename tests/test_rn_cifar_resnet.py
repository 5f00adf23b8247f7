"""examples/rn_cifar_resnet.py: tiny study, mid-run resume after a kill, cached reruns, summary."""

import json
import math
import os
import subprocess
import sys

import pytest

from example_support import PNG_MAGIC, ROOT, check_outputs

SCRIPT = ROOT / "examples" / "rn_cifar_resnet.py"
# Small enough for seconds a run: 128 images at batch 64 = 2 steps an epoch.
SMALL = ("--preset=tiny", "--train_images=128", "--test_images=100")


def _run(out, *flags, expect=0):
    # The checkout's packages, not whichever keras_reversible is installed.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    proc = subprocess.run([sys.executable, str(SCRIPT), f"--out={out}", *flags],
                          capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    assert proc.returncode == expect, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout if expect == 0 else proc.stdout + proc.stderr


def _in_script(code):
    """Runs ``code`` with the script imported as ``m`` in a fresh process (its absl
    flags would clash with other scripts' in this one); returns its JSON print."""
    prelude = ("import importlib.util, json, math, sys\n"
               "spec = importlib.util.spec_from_file_location("
               f"'rn_cifar_resnet', {str(SCRIPT)!r})\n"
               "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n")
    # The script finds its helpers (examples/common) beside itself, as when it runs.
    path = os.pathsep.join([str(ROOT), str(SCRIPT.parent)])
    proc = subprocess.run([sys.executable, "-c", prelude + code], capture_output=True,
                          text=True, timeout=300, cwd=ROOT, env=dict(os.environ, PYTHONPATH=path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_killed_run_resumes_at_epoch_2_with_its_optimizer_and_schedule(tmp_path):
    out = tmp_path / "study"
    flags = (*SMALL, "--variants=rn", "--epochs=3")
    # 1. The process ends abruptly (os._exit) after its first epoch.
    first = _run(out, *flags, "--stop_after_epochs=1", expect=3)
    nothing = _run(out, *flags, "--report_only", expect=1)
    assert "--report_only: no run of this study has finished" in nothing
    assert "rn seed 0: epoch 1/3" in first and "epoch 2/3" not in first
    runs = out / "runs"
    backup = runs / "resnet20-rn-seed0.backup"
    assert json.loads((backup / "training_metadata.json").read_text())["epoch"] == 1
    assert not (runs / "resnet20-rn-seed0.json").exists()  # not finished, not cached
    assert not (out / "results.json").exists()

    # 2. The same command continues at epoch 2 and trains epochs 2 and 3; it is
    # killed again after its last epoch, before the run's result is cached.
    second = _run(out, *flags, "--stop_after_epochs=2", expect=3)
    assert "rn seed 0: resuming after epoch 1/3" in second
    assert "epoch 1/3" not in second.replace("after epoch 1/3", "")
    assert "rn seed 0: epoch 2/3" in second and "rn seed 0: epoch 3/3" in second
    assert not (runs / "resnet20-rn-seed0.json").exists()
    # 3. The trained weights come back from the backup: tested, not retrained.
    third = _run(out, *flags)
    assert "rn seed 0: trained before; restoring its weights to test" in third
    assert ": epoch " not in third
    assert not backup.exists()  # removed once the result is cached
    run = json.loads((runs / "resnet20-rn-seed0.json").read_text())["result"]
    assert run["epochs_trained"] == 3 and run["sessions"] == 3
    assert sorted(run["history"]) == ["1", "2", "3"]
    # The optimizer state came back: its step count, hence the schedule's position.
    assert run["steps_per_epoch"] == 2 and run["optimizer_iterations"] == 6
    # Warm-up to 0.1 over epoch 1 (2 steps), cosine over steps 2–6: at step 4
    # 0.05, at step 6 0. A schedule restarted at 0 would read 0.1 after epoch 2.
    assert run["history"]["1"]["learning_rate"] == pytest.approx(0.1, rel=1e-5)
    assert run["history"]["2"]["learning_rate"] == pytest.approx(0.05, rel=1e-4)
    assert run["history"]["3"]["learning_rate"] == pytest.approx(0.0, abs=1e-6)
    assert all(math.isfinite(h["loss"]) and h["racecar_loss"] > 0
               for h in run["history"].values())
    results = json.loads((out / "results.json").read_text())
    check_outputs(out, results, ("accuracy.png", "reconstructions.png"))
    assert results["runs"]["rn"][0]["epochs_trained"] == 3

    # 4. Another invocation trains nothing.
    again = _run(out, *flags)
    assert "resnet20-rn-seed0: cached" in again and ": epoch " not in again
    assert json.loads((out / "results.json").read_text())["results"] == results["results"]
    assert results["complete"] is True and results["missing_runs"] == []
    # --report_only trains nothing: the unfinished std run is listed as missing.
    report = _run(out, *SMALL, "--variants=std,rn", "--epochs=3", "--report_only")
    assert "resnet20-std-seed0: not finished yet" in report and ": epoch " not in report
    partial = json.loads((out / "results.json").read_text())
    assert partial["complete"] is False and partial["missing_runs"] == ["resnet20-std-seed0"]
    assert partial["results"]["rn"] == results["results"]["rn"]
    # 5. A changed setting (here the epochs) is a different run: not the cached one.
    fourth = _run(out, *SMALL, "--variants=rn", "--epochs=1")
    assert "cached" not in fourth and "rn seed 0: epoch 1/1" in fourth


def test_tiny_study_every_variant(tmp_path):
    out = tmp_path / "tiny"
    printed = _run(out, *SMALL, "--epochs=1")
    assert "wrote" in printed
    results = json.loads((out / "results.json").read_text())
    check_outputs(out, results, ("accuracy.png", "reconstructions.png"))
    assert (out / "reconstructions.png").read_bytes()[:8] == PNG_MAGIC
    assert results["epochs"] == 1 and results["train_images"] == 128
    assert results["settings"]["resnet_depth"] == 20 and results["settings"]["augment"] is True
    summary = results["results"]
    assert set(summary) == {"std", "rn", "rnl"}
    for variant, s in summary.items():
        assert 0.0 <= s["test_accuracy_percent_mean"] <= 100.0
        assert s["parameters"] == 271_098
        assert s["seconds_per_run"][0] > 0 and s["seconds_per_step"][0] > 0
        assert s["reconstruction_mse"][0] >= 0
    assert "difference_to_std_percent" in summary["rn"] and "difference_to_std_percent" \
        not in summary["std"]
    # The variants train different losses: reconstruction only for rn/rnl, latent only for rnl.
    last = {v: json.loads((out / "runs" / f"resnet20-{v}-seed0.json").read_text())
            ["result"]["history"]["1"] for v in ("std", "rn", "rnl")}
    assert last["std"]["racecar_loss"] == 0 and last["rn"]["racecar_loss"] > 0
    assert "latent_loss" not in last["rn"] and last["rnl"]["latent_loss"] > 0
    assert (out / "runs" / "resnet20-rnl-seed0.weights.h5").exists()


def test_summary_and_stale_backups():
    out = _in_script("""
import tempfile
runs = lambda accs: [dict(test_accuracy=a, reconstruction_mse=0.1,
                          seconds=1.0, seconds_per_epoch=1.0, seconds_per_step=0.1,
                          sessions=1, parameters=1) for a in accs]
summary = m.summarize({"std": runs([0.88, 0.90]), "rn": runs([0.93, 0.95]),
                       "rnl": runs([0.89, 0.905])})
one = m.summarize({"std": runs([0.5]), "rn": runs([0.6])})
tmp = tempfile.mkdtemp()
cache = m.experiment.RunCache(tmp, {"epochs": 3})
folder = m.resumable.backup_dir(cache, "k", {"epochs": 3})
open(folder + "/training_metadata.json", "w").write('{"epoch": 2}')
resumed = [m.resumable.resumed_epoch(folder), m.resumable.resumed_epoch(m.resumable.backup_dir(cache, "k", {"epochs": 3})),
           m.resumable.resumed_epoch(m.resumable.backup_dir(cache, "k", {"epochs": 4}))]
print(json.dumps({"summary": summary, "one": one, "resumed": resumed}))
""")
    summary, one = out["summary"], out["one"]
    std = summary["std"]
    assert std["test_accuracy_percent_mean"] == pytest.approx(89.0)
    assert std["test_accuracy_percent_std"] == pytest.approx(math.sqrt(2.0))  # sample std
    assert summary["rn"]["difference_to_std_percent"] == pytest.approx(5.0)
    assert summary["rn"]["seed_spread_percent"] == pytest.approx(math.sqrt(2.0))
    assert summary["rn"]["difference_exceeds_seed_spread"] is True
    assert summary["rn"]["welch_t"] == pytest.approx(5.0 / math.sqrt(2.0))
    assert summary["rnl"]["difference_exceeds_seed_spread"] is False
    assert one["std"]["test_accuracy_percent_std"] is None
    assert one["rn"]["difference_exceeds_seed_spread"] is None
    # A backup is resumed under the same settings, discarded under others.
    assert out["resumed"] == [2, 2, 0]


def test_bad_flags_name_the_flag(tmp_path):
    for flag, name in (("--variants=foo", "--variants"), ("--resnet_depth=18", "--resnet_depth"),
                       ("--stop_after_epochs=0", "--stop_after_epochs"),
                       ("--epochs=0", "--epochs")):
        proc = subprocess.run([sys.executable, str(SCRIPT), f"--out={tmp_path}", *SMALL, flag],
                              capture_output=True, text=True, timeout=120, cwd=ROOT,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert proc.returncode != 0 and name in proc.stderr + proc.stdout, flag
