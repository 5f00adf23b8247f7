"""``python -m keras_reversible.data prepare NAME``: output folders, errors, no half-written output."""

import gzip
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from idx_files import write_idx
from keras_reversible import data

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_prepare(*args, cwd):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "keras_reversible.data", "prepare", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture()
def tiny_mnist(tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / "src"
    src.mkdir()
    for prefix, n in (("train", 12), ("t10k", 7)):
        write_idx(src / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(src / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    return src


def test_mnist_and_motion_blur(tmp_path, tiny_mnist):
    out = tmp_path / "out"
    r = run_prepare("mnist", "--source", str(tiny_mnist), "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    x, y = data.load_mnist_arrays("train", data_dir=out / "mnist", source="local")
    assert x.shape == (12, 28, 28)
    r = run_prepare("motion_blur_mnist", "--source", str(tiny_mnist), "--out", str(out),
                    "--no-progress", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (out / "motion_blur_mnist").iterdir()) == [
        "test.json", "test.npz", "train.json", "train.npz"]
    xb, yb = data.load_motion_blur_mnist_arrays("test", data_dir=tmp_path / "none",
                                                cache_dir=out / "motion_blur_mnist",
                                                source="local")
    xm, ym = data.load_mnist_arrays("test", data_dir=tiny_mnist)
    np.testing.assert_array_equal(xb, data.apply_motion_blur(xm, data.motion_blur_kernel()))
    np.testing.assert_array_equal(yb, ym)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_missing_and_corrupt_input_leave_no_output(tmp_path, tiny_mnist):
    out = tmp_path / "out"
    (tiny_mnist / "t10k-labels-idx1-ubyte.gz").unlink()
    r = run_prepare("mnist", "--source", str(tiny_mnist), "--out", str(out), cwd=tmp_path)
    assert r.returncode == 1
    assert "t10k-labels-idx1-ubyte" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists() or not list(out.iterdir())
    # Corrupt file: truncated gzip.
    (tiny_mnist / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b\x08garbage")
    r = run_prepare("mnist", "--source", str(tiny_mnist), "--out", str(out), cwd=tmp_path)
    assert r.returncode == 1 and "t10k-labels-idx1-ubyte.gz" in r.stderr
    assert not (out / "mnist").exists() and not list(out.iterdir())



def test_missing_source_folder_in_process(tmp_path, capsys):
    from keras_reversible.data.__main__ import main

    out = tmp_path / "out"
    assert main(["prepare", "cifar10", "--source", str(tmp_path / "nope"), "--out", str(out)]) == 1
    assert "nope" in capsys.readouterr().err
    assert not out.exists() or not list(out.iterdir())
    assert main(["prepare", "smoke", "--out", str(out), "--resolution", "30"]) == 1
    assert "multiple" in capsys.readouterr().err
    assert not list(out.iterdir())


def test_cifar_prepare_from_pickles_and_project_npz(tmp_path, data_root):
    src = tmp_path / "cifar-10-batches-py"
    src.mkdir()
    rng = np.random.default_rng(0)
    for name, n in [(f"data_batch_{i}", 2) for i in range(1, 6)] + [("test_batch", 3)]:
        d = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
             b"labels": rng.integers(0, 10, n).tolist()}
        with open(src / name, "wb") as f:
            pickle.dump(d, f, protocol=2)
    out = tmp_path / "out"
    r = run_prepare("cifar10", "--source", str(tmp_path), "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    x, y = data.load_cifar_arrays("cifar10", "train", data_dir=out / "cifar10", source="local")
    assert x.shape == (10, 32, 32, 3)
    r = run_prepare("cifar100", "--source", str(data_root / "cifar100"), "--out", str(out),
                    cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    x, y = data.load_cifar_arrays("cifar100", "test", data_dir=out / "cifar100", source="local")
    expected, _ = data.load_cifar_arrays("cifar100", "test", data_dir=data_root / "cifar100")
    np.testing.assert_array_equal(x, expected)
    _, yc = data.load_cifar_arrays("cifar100", "test", data_dir=out / "cifar100",
                                   label_mode="coarse")
    assert yc.max() == 19
    # Corrupt pickle: error names it, the earlier output stays whole.
    (src / "test_batch").write_bytes(b"junk")
    r = run_prepare("cifar10", "--source", str(tmp_path), "--out", str(out), cwd=tmp_path)
    assert r.returncode == 1 and "test_batch" in r.stderr
    assert data.load_cifar_arrays("cifar10", "test", data_dir=out / "cifar10")[0].shape[0] == 3


def test_smoke_prepare(tmp_path):
    pytest.importorskip("phi", reason="phiflow (extra 'smoke') is not installed")
    out = tmp_path / "out"
    args = ("smoke", "--out", str(out), "--num-simulations", "1", "--num-frames", "3",
            "--resolution", "16")
    r = run_prepare(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "simulated" in r.stdout
    d = data.load_smoke_arrays(1, 3, resolution=16, cache_dir=out / "smoke", progress=False)
    assert d["cached"] and d["high"].shape == (1, 3, 16, 16) and d["low"].shape == (1, 3, 4, 4)
    r = run_prepare(*args, cwd=tmp_path)
    assert r.returncode == 0 and "cached" in r.stdout
