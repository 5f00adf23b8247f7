"""examples/common: results files, resumable runs and progress lines of the example scripts."""

import os

import keras
import numpy as np
import pytest

import zoo
from example_support import import_from

experiment = import_from("examples", "common.experiment")
resumable = import_from("examples", "common.resumable")


def test_write_json_converts_numpy(tmp_path):
    path = tmp_path / "r.json"
    experiment.write_json(path, {"a": np.float32(0.5), "b": np.arange(3), 1: (np.int64(2),)})
    assert experiment.read_json(path) == {"a": 0.5, "b": [0, 1, 2], "1": [2]}


def test_write_results_keeps_the_finish_time_of_unchanged_results(tmp_path):
    path = tmp_path / "results.json"
    experiment.write_results(path, {"finished_at": "day 1", "accuracy": np.float32(0.5)})
    experiment.write_results(path, {"finished_at": "day 2", "accuracy": 0.5})  # nothing new
    assert experiment.read_json(path) == {"finished_at": "day 1", "accuracy": 0.5}
    experiment.write_results(path, {"finished_at": "day 3", "accuracy": 0.75})
    assert experiment.read_json(path) == {"finished_at": "day 3", "accuracy": 0.75}
    path.write_text("{truncated")  # a corrupt file is replaced
    experiment.write_results(path, {"finished_at": "day 4", "accuracy": 0.75})
    assert experiment.read_json(path)["finished_at"] == "day 4"


def test_run_cache_results_and_weights(tmp_path):
    cache = experiment.RunCache(tmp_path, {"epochs": 3})
    model = zoo.racecar_mi_net()
    assert cache.get("Std_A-seed0") is None
    assert not cache.get_weights("Std_A-seed0", model)
    cache.put("Std_A-seed0", {"accuracy": 0.9})
    cache.put_weights("Std_A-seed0", model)
    assert cache.get("Std_A-seed0") == {"accuracy": 0.9}

    other = zoo.racecar_mi_net()
    assert cache.get_weights("Std_A-seed0", other)
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)
    # Other settings: the cached run and its weights are stale.
    stale = experiment.RunCache(tmp_path, {"epochs": 4})
    assert stale.get("Std_A-seed0") is None
    assert not stale.get_weights("Std_A-seed0", other)
    assert not [p for p in os.listdir(tmp_path / "runs") if p.endswith(".tmp")]


def test_run_cache_restore(tmp_path, capsys):
    cache = experiment.RunCache(tmp_path, {"epochs": 3})
    model = zoo.racecar_mi_net()
    assert cache.restore("Std_A-seed0", model) is None
    cache.put("Std_A-seed0", {"accuracy": 0.9})
    assert cache.restore("Std_A-seed0", model) is None  # a result without weights
    cache.put_weights("Std_A-seed0", model)
    other = zoo.racecar_mi_net()
    assert cache.restore("Std_A-seed0", other) == {"accuracy": 0.9}
    assert capsys.readouterr().out == "  Std_A-seed0: cached\n"
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_epoch_progress_prints_every_n_epochs_and_the_last(capsys):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x = np.zeros((4, 2), "float32")
    model.fit(x, x[:, :1], epochs=5, verbose=0,
              callbacks=[experiment.EpochProgress("tiny", every=2, total=5)])
    lines = [l for l in capsys.readouterr().out.splitlines() if l.strip()]
    assert [l.split("epoch ")[1].split(" ")[0] for l in lines] == ["2/5", "4/5", "5/5"]
    assert all("loss=" in l for l in lines)


def test_resolve_preset_takes_given_flags_only():
    class Flags:
        epochs, seeds, batch_size = None, ["3", "4"], 0

    preset = {"epochs": 2000, "seeds": [0], "batch_size": 512}
    assert experiment.resolve_preset(preset, Flags) == {"epochs": 2000, "seeds": [3, 4],
                                                        "batch_size": 0}
    assert preset == {"epochs": 2000, "seeds": [0], "batch_size": 512}


def test_a_run_at_chance_for_five_epochs_stops_the_study(tmp_path):
    cache = experiment.RunCache(tmp_path, {"epochs": 6})
    model = zoo.racecar_mi_net()
    log = {e: {"loss": 1.9, "accuracy": 0.45 if e == 1 else 0.2} for e in range(1, 7)}
    experiment.write_json(tmp_path / "runs" / "RR_A-seed0.epochs.json", {"epochs": log})
    (tmp_path / "runs" / "RR_A-seed0.backup").mkdir()
    resumable.stop_if_failed(model, log, cache, "RR_A-seed0", "RR_A", "-", chance=None)
    resumable.stop_if_failed(model, {**log, 6: {"loss": 1.9, "accuracy": 0.3}}, cache,
                             "RR_A-seed0", "RR_A", "-", chance=0.2)  # epoch 6 is alive
    with pytest.raises(SystemExit, match=r"RR_A: it collapsed: training accuracy "
                                         r"0\.200-0\.200 in epochs 2-6, chance 0\.200.*Lower λ"):
        resumable.stop_if_failed(model, log, cache, "RR_A-seed0", "RR_A", "Lower λ.",
                                 chance=0.2)
    assert sorted(os.listdir(tmp_path / "runs")) == ["RR_A-seed0.collapsed.epochs.json"]
