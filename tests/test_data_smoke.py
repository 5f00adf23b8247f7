"""keras_reversible.data smoke plumes: phiflow simulation, down-sampling, cache, dataset."""

import json

import numpy as np
import pytest

from keras_reversible import data
from keras_reversible.data import smoke as smoke_module

pytest.importorskip("phi", reason="phiflow (extra 'smoke') is not installed")

SMALL = dict(num_simulations=2, num_frames=5, resolution=32, downsample=4)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("smoke_cache")


@pytest.fixture(scope="module")
def small(cache):
    return data.load_smoke_arrays(seed=0, cache_dir=cache, progress=False, **SMALL)


def test_shapes_and_values(small):
    assert small["high"].shape == (2, 5, 32, 32) and small["high"].dtype == np.float32
    assert small["low"].shape == (2, 5, 8, 8) and small["low"].dtype == np.float32
    assert (small["high"] >= 0).all() and small["high"].max() > 0
    # Smoke accumulates: every frame holds more than the one before.
    totals = small["high"].sum(axis=(2, 3))
    assert (np.diff(totals, axis=1) > 0).all()
    assert not small["cached"] and small["path"].is_file()


def test_low_res_is_4x4_average_of_high_res(small):
    h = small["high"].astype(np.float64)
    expected = h.reshape(2, 5, 8, 4, 8, 4).mean(axis=(3, 5))
    np.testing.assert_allclose(small["low"], expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(small["low"][0, 0, 1, 2], h[0, 0, 4:8, 8:12].mean(), rtol=1e-6)


def test_parameters_are_seeded_and_randomised():
    a = data.smoke_parameters(seed=3, **SMALL)
    assert a == data.smoke_parameters(seed=3, **SMALL)
    assert a != data.smoke_parameters(seed=4, **SMALL)
    s0, s1 = a["simulations"]
    assert s0 != s1
    for key in ("inflow_x", "inflow_y", "inflow_radius", "inflow_vx", "inflow_vy", "buoyancy"):
        assert key in s0
    with pytest.raises(ValueError, match="multiple"):
        data.smoke_parameters(resolution=30, downsample=4)


def test_cache_hit_and_json(small, cache):
    again = data.load_smoke_arrays(seed=0, cache_dir=cache, progress=False, **SMALL)
    assert again["cached"]
    np.testing.assert_array_equal(again["high"], small["high"])
    params = json.loads(small["path"].with_suffix(".json").read_text())
    assert params["resolution"] == 32 and len(params["simulations"]) == 2
    assert not list(cache.glob(".*.tmp"))
    assert small["path"].stat().st_mode & 0o777 == 0o644


def test_deterministic_and_new_parameters_give_new_data(small, cache, tmp_path):
    fresh = data.load_smoke_arrays(seed=0, cache_dir=tmp_path, progress=False, **SMALL)
    assert not fresh["cached"]
    np.testing.assert_allclose(fresh["high"], small["high"], atol=1e-5)
    other = data.load_smoke_arrays(seed=1, cache_dir=cache, progress=False, **SMALL)
    assert not other["cached"] and other["path"] != small["path"]
    assert not np.allclose(other["high"], small["high"])
    assert len(list(cache.glob("smoke_*.npz"))) >= 2


def test_corrupt_cache_is_regenerated(small, tmp_path):
    params = data.smoke_parameters(seed=0, **SMALL)
    stem = f"smoke_{smoke_module.cache_lib.params_digest(params)}"
    (tmp_path / f"{stem}.npz").write_bytes(b"not a zip")
    got = data.load_smoke_arrays(seed=0, cache_dir=tmp_path, progress=False, **SMALL)
    assert not got["cached"]
    np.testing.assert_allclose(got["high"], small["high"], atol=1e-5)
    assert data.load_smoke_arrays(seed=0, cache_dir=tmp_path, progress=False, **SMALL)["cached"]


def test_downsample_frames():
    x = np.arange(16, dtype=np.float32).reshape(4, 4)
    np.testing.assert_allclose(data.downsample_frames(x, 2), [[2.5, 4.5], [10.5, 12.5]])
    with pytest.raises(ValueError, match="multiple"):
        data.downsample_frames(np.zeros((5, 5)), 2)


def test_dataset_pairs_and_augmentation(small, cache):
    kw = dict(cache_dir=cache, progress=False, train_fraction=0.5, **SMALL)
    test = list(data.smoke_dataset("test", batch_size=5, **kw))
    assert len(test) == 1
    lo, hi = test[0]
    assert tuple(lo.shape) == (5, 8, 8, 1) and tuple(hi.shape) == (5, 32, 32, 1)
    np.testing.assert_array_equal(lo.numpy()[..., 0], small["low"][1])
    np.testing.assert_array_equal(hi.numpy()[..., 0], small["high"][1])
    # Augmented training pairs: still consistent (low == pooled high) after flips/rotations.
    aug = list(data.smoke_dataset("train", batch_size=5, seed=1, **kw))
    lo, hi = aug[0]
    np.testing.assert_allclose(lo.numpy()[..., 0], data.downsample_frames(hi.numpy()[..., 0], 4),
                               rtol=1e-5, atol=1e-6)
    pooled = {np.round(f.sum(), 3) for f in hi.numpy()}
    assert pooled == {np.round(f.sum(), 3) for f in small["high"][0]}
    with pytest.raises(ValueError, match="split"):
        data.smoke_dataset("val", **kw)
    # simulation_seed picks the plumes (seed=1 is cached by the test above or simulated).
    lo1, hi1 = next(iter(data.smoke_dataset("test", batch_size=5, simulation_seed=1, **kw)))
    assert not np.allclose(hi1.numpy()[..., 0], small["high"][1])
