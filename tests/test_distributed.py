"""Multi-process training: MultiWorkerMirroredStrategy on 127.0.0.1, SIGKILL and resume.

Marked ``distributed`` (slow, several TensorFlow processes): run with
``make test-distributed``; ``make test`` leaves them out.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

pytestmark = pytest.mark.distributed

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "multi_worker.py"
TIMEOUT = 240
# 640 MNIST images in global batches of 64: 10 steps an epoch.
TINY = ["--train_examples=640", "--global_batch_size=64", "--log_every=1"]


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1", **extra)
    return env


def _run(out, *flags):
    proc = subprocess.run([sys.executable, str(SCRIPT), f"--out={out}", *TINY, *flags],
                          capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT, env=_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def _weights(folder):
    with np.load(folder / "weights.npz") as f:
        return [f[k] for k in sorted(f.files, key=lambda k: int(k.split("_")[1]))]


def test_two_workers_on_localhost_agree(tmp_path):
    """Two worker processes (TF_CONFIG, free ports) train and end with the same weights."""
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import multi_worker
    finally:
        sys.path.pop(0)
    ports = multi_worker.free_ports(2)
    out = tmp_path / "mw"
    procs = [subprocess.Popen(
        [sys.executable, str(SCRIPT), f"--out={out}", *TINY, "--epochs=2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
        env=_env(TF_CONFIG=multi_worker.tf_config(ports, i))) for i in range(2)]
    try:
        logs = [p.communicate(timeout=TIMEOUT)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]
    runs = [json.loads((out / f"worker{i}" / "result.json").read_text()) for i in range(2)]
    assert [r["workers"] for r in runs] == [2, 2]
    for a, b in zip(_weights(out / "worker0"), _weights(out / "worker1")):
        np.testing.assert_array_equal(a, b)
    assert runs[0]["history"] == runs[1]["history"]
    # The same global batches on one worker give the same global metrics.
    _run(tmp_path / "single", "--epochs=2")
    single = json.loads((tmp_path / "single" / "worker0" / "result.json").read_text())
    assert single["workers"] == 1
    for key in ("loss", "task_loss", "racecar_loss"):
        np.testing.assert_allclose(runs[0]["history"][key], single["history"][key], rtol=2e-3,
                                   err_msg=key)
    # An arg-max tie may flip one of the 640 predictions.
    np.testing.assert_allclose(runs[0]["history"]["accuracy"], single["history"]["accuracy"],
                               atol=1.5 / 640)
    assert runs[0]["history"]["loss"][1] < runs[0]["history"]["loss"][0]


def test_sigkill_mid_epoch_resumes_from_backup(tmp_path):
    """Killed in epoch 2 of 3, restarted: epochs 2 and 3 run, weights match an uninterrupted run."""
    out = tmp_path / "killed"
    cmd = [sys.executable, str(SCRIPT), f"--out={out}", *TINY, "--epochs=3"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=ROOT, env=_env())
    watchdog = threading.Timer(TIMEOUT, proc.kill)
    watchdog.start()
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("worker 0: epoch 2 step 3 "):
                os.kill(proc.pid, signal.SIGKILL)
                break
        proc.wait(timeout=60)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = "".join(seen)
    assert proc.returncode == -signal.SIGKILL, log[-3000:]
    assert "epoch 1 done" in log and "epoch 2 done" not in log
    assert (out / "backup" / "worker0").is_dir(), "no backup was written at the end of epoch 1"
    assert not (out / "worker0" / "weights.npz").exists()

    resumed = _run(out, "--epochs=3")
    assert "epoch 1 begins" not in resumed  # the finished epoch is not redone
    assert "worker 0: epoch 2 begins" in resumed and "epoch 3 done" in resumed
    result = json.loads((out / "worker0" / "result.json").read_text())
    assert result["epochs_run"] == [2, 3]
    assert not (out / "backup" / "worker0").exists()  # deleted after the finished run

    _run(tmp_path / "uninterrupted", "--epochs=3")
    reference = json.loads((tmp_path / "uninterrupted" / "worker0" / "result.json").read_text())
    assert reference["epochs_run"] == [1, 2, 3]
    for a, b in zip(_weights(out / "worker0"), _weights(tmp_path / "uninterrupted" / "worker0")):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for key in ("loss", "racecar_loss", "task_loss"):
        np.testing.assert_allclose(result["history"][key], reference["history"][key][1:],
                                   rtol=1e-5, err_msg=key)
