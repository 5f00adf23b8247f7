"""SavedModel export: forward and reverse endpoints, fresh-process loading, atomicity."""

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_reversible as kr
import zoo

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Runs in a fresh interpreter: loads each export with TensorFlow only.
LOADER = r"""
import json, sys
import numpy as np
import tensorflow as tf
out = {}
for path in sys.argv[1:]:
    x = np.load(path + ".x.npy")
    loaded = tf.saved_model.load(path)
    res = {"serve": loaded.serve(x), "reconstruct": loaded.reconstruct(x)}
    res.update({f"ra_{k}": v for k, v in loaded.reverse_activations(x).items()})
    np.savez(path + ".out.npz", **{k: np.asarray(v) for k, v in res.items()})
print(json.dumps({"imported": sorted(m for m in sys.modules
                                     if m.split(".")[0] in ("keras_reversible", "zoo"))}))
"""


def _bn_residual_model():
    """Conv → BN → relu, a residual Add and pooling: reverse BN uses moving statistics."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(6, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    h = keras.layers.Activation("relu")(x)
    y = keras.layers.Conv2D(6, 3, padding="same", activation="relu")(h)
    x = keras.layers.Add()([h, y])
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(5)(x)
    return kr.ReversibleModel(inputs, outputs, input_range="relu")


def _trained(model, x):
    """One epoch: BatchNormalization's moving statistics leave their initial values."""
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, np.arange(len(x)) % 5, epochs=1, batch_size=8, verbose=0)
    return model


def test_export_loads_in_fresh_process_without_the_package(tmp_path):
    rng = np.random.default_rng(0)
    cases = {
        "mnist_cnn": (zoo.racecar_mnist_cnn(), rng.uniform(size=(6, 28, 28, 1))),
        "bn_residual": (_bn_residual_model(), rng.uniform(size=(16, 8, 8, 3))),
    }
    paths = []
    _trained(cases["bn_residual"][0], cases["bn_residual"][1].astype("float32"))
    for name, (model, x) in cases.items():
        x = x.astype("float32")
        path = str(tmp_path / name)
        assert model.export(path, verbose=False) == list(kr.export.ENDPOINTS)
        np.save(path + ".x.npy", x)
        paths.append(path)
    proc = subprocess.run([sys.executable, "-c", LOADER, *paths], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"imported": []}
    for path, (model, x) in zip(paths, cases.values()):
        x = x.astype("float32")
        got = np.load(path + ".out.npz")
        np.testing.assert_allclose(got["serve"], model(x, training=False), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(got["reconstruct"], model.reconstruct(x), rtol=1e-6, atol=1e-6)
        pairs = model.reverse_activations(x, depth=model.num_constrained)
        assert len(got.files) == 2 + 2 * len(pairs)
        for m, (forward, reverse) in enumerate(pairs, start=1):
            np.testing.assert_allclose(got[f"ra_forward_{m}"], forward, rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(got[f"ra_reverse_{m}"], reverse, rtol=1e-6, atol=1e-6)
        # The reverse pass is not the identity: the check above can fail.
        assert np.abs(got["reconstruct"] - x).max() > 1e-3


def test_tfsm_layer_serves_both_endpoints(tmp_path):
    model = zoo.racecar_mnist_cnn()
    path = str(tmp_path / "cnn")
    model.export(path, verbose=False)
    x = np.random.default_rng(1).uniform(size=(3, 28, 28, 1)).astype("float32")
    inputs = keras.Input((28, 28, 1))
    wrapper = keras.Model(inputs, [
        keras.layers.TFSMLayer(path, call_endpoint="serve")(inputs),
        keras.layers.TFSMLayer(path, call_endpoint="reconstruct")(inputs),
    ])
    logits, regen = wrapper(x)
    np.testing.assert_allclose(logits, model(x), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(regen, model.reconstruct(x), rtol=1e-6, atol=1e-6)


def test_export_refuses_existing_path_and_overwrites_atomically(tmp_path):
    model = zoo.racecar_mi_net()
    path = tmp_path / "mi"
    model.export(path, verbose=False)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's 0700
    with pytest.raises(FileExistsError, match="overwrite=True"):
        model.export(path, verbose=False)
    with pytest.raises(FileExistsError, match="overwrite=True"):  # every format
        model.export(path, format="onnx", verbose=False)
    with pytest.raises(TypeError, match="jax2tf_kwargs"):
        model.export(tmp_path / "other", verbose=False, jax2tf_kwargs={})
    (tmp_path / "file").write_text("not a model")
    with pytest.raises(FileExistsError, match="file"):
        model.export(tmp_path / "file", verbose=False)
    x = np.ones((2, 12), "float32")
    loaded = tf.saved_model.load(str(path))  # keep a reference while calling it
    before = np.asarray(loaded.serve(x))
    model.set_weights([w + 0.5 for w in model.get_weights()])
    model.export(path, overwrite=True, verbose=False)
    reloaded = tf.saved_model.load(str(path))
    after = np.asarray(reloaded.serve(x))
    np.testing.assert_allclose(after, model(x), rtol=1e-6, atol=1e-6)
    assert not np.allclose(before, after)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "mi"]  # no .tmp / .old left


def test_failed_export_leaves_no_partial_folder(tmp_path, monkeypatch):
    model = zoo.racecar_mi_net()
    archive_class = type(keras.export.ExportArchive())
    real_write_out = archive_class.write_out

    def failing_write_out(self, filepath, **kwargs):
        real_write_out(self, filepath, **kwargs)  # a complete SavedModel, then
        assert os.listdir(filepath)
        raise OSError("disk full")                # the failure

    monkeypatch.setattr(archive_class, "write_out", failing_write_out)
    with pytest.raises(OSError, match="disk full"):
        model.export(tmp_path / "new", verbose=False)
    assert list(tmp_path.iterdir()) == []
    # Over an existing export: the old one stays, complete and loadable.
    monkeypatch.setattr(archive_class, "write_out", real_write_out)
    model.export(tmp_path / "old", verbose=False)
    monkeypatch.setattr(archive_class, "write_out", failing_write_out)
    with pytest.raises(OSError, match="disk full"):
        model.export(tmp_path / "old", overwrite=True, verbose=False)
    assert [p.name for p in tmp_path.iterdir()] == ["old"]
    x = np.ones((2, 12), "float32")
    loaded = tf.saved_model.load(str(tmp_path / "old"))
    np.testing.assert_allclose(loaded.serve(x), model(x), rtol=1e-6, atol=1e-6)
