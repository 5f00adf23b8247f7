"""A corrupt run-cache entry is a cache miss with a warning naming the file (issue 18)."""

import numpy as np
import pytest

import zoo
from example_support import import_from

experiment = import_from("examples", "common.experiment")


@pytest.fixture()
def cache(tmp_path):
    cache = experiment.RunCache(tmp_path, {"epochs": 3})
    cache.put("run", {"accuracy": 0.9})
    cache.put_weights("run", zoo.racecar_mi_net())
    return cache


@pytest.mark.parametrize("text", ['{"settings": {"epochs": 3}, "resu', "[]", "", "\xff\xfe"])
def test_corrupt_result_is_a_miss(cache, text):
    # Before: JSONDecodeError / AttributeError aborted the whole study.
    path = cache._path("run")
    with open(path, "w", encoding="latin-1") as f:
        f.write(text)
    with pytest.warns(UserWarning, match=rf"corrupt cache entry {path}"):
        assert cache.get("run") is None
    with pytest.warns(UserWarning, match="corrupt cache entry"):
        assert cache.restore("run", zoo.racecar_mi_net()) is None


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _short(path):
    with np.load(path) as f:
        arrays = [f[k] for k in sorted(f.files, key=lambda k: int(k.split("_")[1]))]
    np.savez(path, *arrays[:-1])


def _garbage(path):
    path.write_bytes(b"not a zip file")


@pytest.mark.parametrize("damage", [_truncate, _short, _garbage])
def test_corrupt_weights_are_a_miss_and_leave_the_model_untouched(cache, tmp_path, damage):
    # Before: BadZipFile / a ValueError naming no file.
    path = tmp_path / "runs" / "run.weights.npz"
    damage(path)
    model = zoo.racecar_mi_net()
    before = [w.copy() for w in model.get_weights()]
    with pytest.warns(UserWarning, match=rf"corrupt cache entry {path}"):
        assert cache.get_weights("run", model) is False
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    with pytest.warns(UserWarning, match="corrupt cache entry"):
        assert cache.restore("run", model) is None
