"""tf.distribute (2 logical CPU devices), mixed precision and XLA."""

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
from keras_reversible import losses

ROOT = pathlib.Path(__file__).resolve().parents[1]
LOGITS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def test_mirrored_strategy_matches_one_device():
    """Loss, every term, every metric and the gradients: 2 replicas == 1 device.

    ``tests/replica_check.py`` runs in its own process (logical devices must
    be set before TensorFlow starts) and reports, per configuration, each
    metric of ``fit`` and ``evaluate`` on both and the gradient difference.
    """
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "replica_check.py")],
                          capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {r["config"]: r for r in map(json.loads, proc.stdout.strip().splitlines())}
    stats = rows.pop("reverse_statistics")
    assert stats["variables"] == 2 and all(stats["moved"]) and stats["replicas_agree"], stats
    assert set(rows) == {"mean", "mean+latent+srip", "l2_loss+latent+srip+l2",
                         "zoo:racecar_mnist_cnn"}
    assert set(rows["l2_loss+latent+srip+l2"]["fit"]) == {
        "loss", "task_loss", "racecar_loss", "latent_loss", "ortho_loss", "regularization_loss"}
    for name, row in rows.items():
        assert row["replicas"] == 2
        for phase in ("fit", "evaluate"):
            for metric, (single, mirrored, rel) in row[phase].items():
                assert rel < 2e-6, f"{name} {phase} {metric}: 1 device {single}, 2 replicas {mirrored}"
                assert single != 0 or metric == "task_loss", (name, phase, metric)
        assert row["grad_rel_diff"] < 2e-6, (name, row["grad_max_abs_diff"])


@pytest.fixture
def policy(request):
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(request.param)
    yield request.param
    keras.mixed_precision.set_global_policy(previous)


def _wide_model():
    """Dense layers on inputs of size ~100: ``l2_loss`` terms far above float16's 65,504."""
    inputs = keras.Input((16,))
    x = keras.layers.Dense(32, activation="relu")(inputs)
    outputs = keras.layers.Dense(4)(x)
    return kr.ReversibleModel(inputs, outputs, reduction="l2_loss", racecar_weight=1.0)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"], indirect=True)
def test_mixed_precision_trains(policy):
    keras.utils.set_random_seed(0)
    model = zoo.racecar_mnist_cnn(input_shape=(16, 16, 1))
    assert model.compute_dtype == policy.split("_")[1]
    model.compile(keras.optimizers.Adam(1e-3), LOGITS)
    # mixed_float16: Keras wraps the optimizer; train_step scales the loss through it.
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer) == (
        policy == "mixed_float16")
    x = np.random.default_rng(0).uniform(size=(16, 16, 16, 1)).astype("float32")
    before = model.get_weights()
    history = model.fit(x, np.arange(16) % 10, batch_size=8, epochs=2, verbose=0).history
    assert all(np.all(np.isfinite(v)) for v in history.values()), history
    assert history["racecar_loss"][0] > 0
    # A loss-scaled step whose float16 gradients overflow is skipped, not applied.
    assert int(model.optimizer.iterations) >= 2
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())
    assert any(not np.array_equal(w, w0) for w, w0 in zip(model.get_weights(), before))


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"], indirect=True)
def test_mixed_precision_reversal_losses_are_float32(policy):
    x = np.random.default_rng(0).uniform(0, 200, size=(32, 16)).astype("float32")
    y = np.arange(32) % 4
    keras.utils.set_random_seed(0)
    model = _wide_model()
    model.compile(keras.optimizers.SGD(), LOGITS)
    got = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    assert np.isfinite(got["racecar_loss"]) and got["racecar_loss"] > 65504  # inf in float16
    keras.mixed_precision.set_global_policy("float32")
    reference = _wide_model()
    reference.set_weights(model.get_weights())
    reference.compile(keras.optimizers.SGD(), LOGITS)
    expected = reference.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    keras.mixed_precision.set_global_policy(policy)
    # Half-precision activations, float32 sums: agreement to the activations' precision.
    np.testing.assert_allclose(got["racecar_loss"], expected["racecar_loss"], rtol=3e-2)


def test_reconstruction_error_is_float32_for_half_inputs():
    a = tf.fill((64, 64), tf.constant(100.0, tf.float16))
    b = tf.zeros((64, 64), tf.float16)
    for reduction, value in (("l2_loss", 0.5 * 64 * 64 * 1e4), ("mean", 1e4)):
        err = losses.reconstruction_error(a, b, reduction)
        assert err.dtype == tf.float32
        np.testing.assert_allclose(float(err), value, rtol=1e-6)


def test_jit_compile_matches_graph_mode():
    """The MNIST CNN with unpooling and RNL: two Adam steps, XLA vs graph mode.

    Every zoo model compiles with XLA on CPU (checked by hand); the larger
    ones take minutes to compile, too long for the suite. RNL raises all 9
    non-max entries here: XLA draws other random numbers than graph mode, so
    a random choice of fewer entries differs between the two.
    """
    results = []
    for jit in (False, True):
        keras.utils.set_random_seed(0)
        model = zoo.racecar_mnist_cnn(input_shape=(16, 16, 1), max_pool_reverse="unpool",
                                      latent_generation={"num_entries": 9})
        model.compile(keras.optimizers.Adam(1e-3), LOGITS, jit_compile=jit)
        assert model.jit_compile is jit
        x = np.random.default_rng(0).uniform(size=(8, 16, 16, 1)).astype("float32")
        history = model.fit(x, np.arange(8), batch_size=8, epochs=2, verbose=0).history
        results.append((history, model.get_weights()))
    (h_graph, w_graph), (h_xla, w_xla) = results
    assert set(h_graph) == {"loss", "task_loss", "racecar_loss", "latent_loss"} == set(h_xla)
    for key in h_graph:
        np.testing.assert_allclose(h_xla[key], h_graph[key], rtol=1e-4, atol=1e-6, err_msg=key)
    for a, b in zip(w_xla, w_graph):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


class _NumpyDouble(keras.layers.Layer):
    """Doubles its input through ``tf.numpy_function``: no XLA kernel exists."""

    def call(self, x):
        out = tf.numpy_function(lambda a: 2 * a, [x], x.dtype, stateful=False)
        out.set_shape(x.shape)
        return out


def test_jit_compile_refusal_names_the_op_and_layer():
    kr.register_reverse_rule(_NumpyDouble)(lambda layer, y: y / 2)
    inputs = keras.Input((6,))
    x = _NumpyDouble(name="numpy_double")(keras.layers.Dense(4)(inputs))
    model = kr.ReversibleModel(inputs, keras.layers.Dense(2)(x), name="uncompilable")
    model.compile("sgd", "mse", jit_compile=True)
    with pytest.raises(tf.errors.InvalidArgumentError) as err:
        model.fit(np.ones((4, 6)), np.ones((4, 2)), verbose=0)
    message = str(err.value)
    assert "XLA_CPU_JIT: PyFuncStateless" in message
    assert "uncompilable_taps" in message and "numpy_double" in message
    model.compile("sgd", "mse", jit_compile=False)  # without XLA it trains
    assert np.isfinite(model.fit(np.ones((4, 6)), np.ones((4, 2)), verbose=0).history["loss"][0])
