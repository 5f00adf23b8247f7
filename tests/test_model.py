"""ReversibleModel: gradients, shapes, variables, losses, serialization."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_reversible as kr
import zoo
from keras_reversible import graph as graph_lib
from keras_reversible import losses

L = keras.layers
RNG = np.random.default_rng(0)
CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _data(n=8, shape=(28, 28, 1), classes=10):
    x = RNG.uniform(size=(n, *shape)).astype("float32")
    y = (np.arange(n) % classes).astype("int32")
    return x, y


def _bn_model(**settings):
    """Conv-BN-ReLU-MaxPool stack with a Dense head, reverse from 'conv2'."""
    inputs = keras.Input((12, 12, 3))
    x = L.Conv2D(8, 3, padding="same", name="conv1")(inputs)
    x = L.BatchNormalization(name="bn1")(x)
    x = L.ReLU(name="relu1")(x)
    x = L.MaxPooling2D(name="pool1")(x)
    x = L.Conv2D(4, 3, padding="same", name="conv2")(x)
    x = L.BatchNormalization(name="bn2")(x)
    x = L.ReLU(name="relu2")(x)
    x = L.Flatten()(x)
    outputs = L.Dense(5, name="head")(x)
    settings.setdefault("reverse_from", "relu2")
    return kr.ReversibleModel(inputs, outputs, **settings)


def _gradients(model, x, y, term):
    with tf.GradientTape() as tape:
        _, terms = model.compute_loss_terms(x, y, None, training=True)
        value = terms[term] if term != "total" else tf.add_n([t for t in terms.values() if t is not None])
    grads = tape.gradient(value, model.trainable_weights)
    return {v.path: g for v, g in zip(model.trainable_weights, grads)}


def _nonzero(g):
    return g is not None and float(tf.reduce_max(tf.abs(tf.convert_to_tensor(g)))) > 0


@pytest.mark.parametrize("build,head", [
    (lambda: zoo.racecar_mnist_cnn(racecar_weight=1.0), {"fc"}),
    (lambda: _bn_model(), {"head"}),
    (lambda: zoo.racecar_mi_net(), set()),
])
def test_racecar_gradients_reach_every_reversed_weight_layer(build, head):
    model = build()
    model.compile("adam", CE)
    shape = model.inputs[0].shape[1:]
    x, y = _data(8, shape, model.outputs[0].shape[-1])
    racecar = _gradients(model, x, y, "racecar_loss")
    for path, g in racecar.items():
        layer = path.split("/")[0]
        if layer in head:
            assert not _nonzero(g), f"head variable {path} got a racecar gradient"
        else:
            assert _nonzero(g), f"{path} got no racecar gradient"
    total = _gradients(model, x, y, "total")
    missing = [p for p, g in total.items() if not _nonzero(g)]
    assert not missing, f"variables without gradient from the total loss: {missing}"


def test_bias_subtracted_from_its_own_linear_output_gets_zero_gradient():
    # I_r = W x + b (linear activation): the reverse pass starts with
    # I_r − b = W x, so b cancels exactly (DESIGN §3 names this exception).
    inputs = keras.Input((6,))
    h = L.Dense(5, activation="tanh", name="d1")(inputs)
    outputs = L.Dense(3, name="d2")(h)
    model = kr.ReversibleModel(inputs, outputs)
    model.compile("adam", CE)
    x = RNG.normal(size=(4, 6)).astype("float32")
    grads = _gradients(model, x, np.zeros(4, "int32"), "racecar_loss")
    assert float(tf.reduce_max(tf.abs(grads["d2/bias"]))) == 0.0
    for path in ("d1/kernel", "d1/bias", "d2/kernel"):
        assert _nonzero(grads[path]), path


@pytest.mark.parametrize("build", [zoo.racecar_mnist_cnn, zoo.racecar_mi_net, _bn_model])
def test_shapes_and_tied_variables(build):
    model = build()
    plain = keras.Model(model.inputs, model.outputs)
    own = [v.path for v in model.reverse_statistics]
    assert [v.path for v in model.variables if v.path not in own] == [
        v.path for v in plain.variables]
    assert [v.path for v in model.trainable_variables] == [
        v.path for v in plain.trainable_variables]
    bn = [layer for layer in model.layers if isinstance(layer, L.BatchNormalization)]
    # bn1 is a range op of conv2's input; bn2 lies past I_r = relu2.
    assert own == ([f"{model.name}/bn1_reverse_moving_mean",
                    f"{model.name}/bn1_reverse_moving_variance"] if bn else [])
    x, _ = _data(4, model.inputs[0].shape[1:])
    pairs = model.reverse_activations(x)
    assert len(pairs) == model.depth == model.num_constrained
    for forward, reverse in pairs:
        assert forward.shape == reverse.shape
    assert model.reconstruct(x).shape == x.shape


def test_reverse_activations_can_probe_beyond_the_trained_depth():
    model = zoo.racecar_mnist_cnn(depth=0)
    x, _ = _data(2)
    assert model.reverse_activations(x) == []
    pairs = model.reverse_activations(x, depth=3)
    assert [f.shape for f, _ in pairs] == [(2, 28, 28, 1), (2, 14, 14, 64), (2, 7, 7, 64)]
    with pytest.raises(ValueError, match=r"depth must be in \[0, 3\], got 4"):
        model.reverse_activations(x, depth=4)


def test_make_reversible_shares_layers_and_accepts_sequential():
    seq = keras.Sequential([keras.Input((8,)), L.Dense(4, activation="relu"), L.Dense(2)])
    model = kr.make_reversible(seq, input_range="relu")
    assert [id(v) for v in model.trainable_weights] == [id(v) for v in seq.trainable_weights]
    x = RNG.normal(size=(3, 8)).astype("float32")
    np.testing.assert_allclose(model.predict(x, verbose=0), seq.predict(x, verbose=0))
    assert model.reconstruct(x).min() >= 0  # relu input range


def test_fit_reports_every_term_and_total_is_their_sum():
    model = _bn_model(latent_generation=True)
    model.layers[1].kernel_regularizer = None
    model.compile("sgd", CE)
    x, y = _data(16, (12, 12, 3), 5)
    hist = model.fit(x, y, batch_size=16, epochs=1, verbose=0).history
    assert set(hist) == {"loss", "task_loss", "racecar_loss", "latent_loss"}
    parts = hist["task_loss"][0] + hist["racecar_loss"][0] + hist["latent_loss"][0]
    assert hist["loss"][0] == pytest.approx(parts, rel=1e-5)
    assert all(np.isfinite(v[0]) and v[0] > 0 for v in hist.values())
    ev = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    assert set(ev) == set(hist)


@pytest.mark.parametrize("reduction", ["l2_loss", "mean"])
def test_racecar_loss_value(reduction):
    lambdas = [0.5, 2.0, 0.25]
    model = zoo.racecar_mnist_cnn(racecar_weight=lambdas, reduction=reduction)
    model.compile("sgd", CE)
    x, y = _data(4)
    _, terms = model.compute_loss_terms(x, y, None, training=False)
    pairs = model.reverse_activations(x)
    want = 0.0
    for lam, (f, r) in zip(lambdas, pairs):
        d = (r.astype("float64") - f)
        want += lam * (0.5 * np.sum(d**2) if reduction == "l2_loss" else np.mean(d**2))
    assert float(terms["racecar_loss"]) == pytest.approx(want, rel=1e-4)


def test_zero_weight_is_not_computed(monkeypatch):
    calls = []
    original = graph_lib.ReverseGraph.run
    monkeypatch.setattr(graph_lib.ReverseGraph, "run", lambda *a, **k: calls.append(1) or original(*a, **k))
    model = zoo.racecar_mnist_cnn(racecar_weight=0.0)
    model.compile("sgd", CE)
    x, y = _data(8)
    hist = model.fit(x, y, epochs=1, verbose=0).history
    assert hist["racecar_loss"] == [0.0]
    assert calls == []
    model = zoo.racecar_mnist_cnn(depth=0)
    model.compile("sgd", CE)
    model.fit(x, y, epochs=1, verbose=0)
    assert calls == []


def test_reverse_batch_norm_never_updates_moving_statistics():
    model = _bn_model()
    x, y = _data(8, (12, 12, 3), 5)
    bn = model.get_layer("bn1")
    model.compile("sgd", CE)
    before = bn.moving_mean.numpy().copy()
    model.reverse_program.forward(x, training=True)  # one forward update, for reference
    after_forward = bn.moving_mean.numpy().copy()
    assert not np.allclose(before, after_forward)
    model.reconstruct(x, training=True)  # forward (updates) + reverse (must not)
    bn.moving_mean.assign(after_forward)
    _, taps = model.reverse_program.forward(x, training=False)
    model.reverse_program.reverse(taps, training=True)
    np.testing.assert_array_equal(bn.moving_mean.numpy(), after_forward)


def test_keras_round_trip(tmp_path):
    model = zoo.racecar_mnist_cnn(racecar_weight=[1e-3, 1e-4, 1e-5], latent_generation={"closeness": 0.8})
    model.compile("adam", CE, metrics=["accuracy"])
    x, y = _data(16)
    model.fit(x, y, epochs=1, verbose=0)
    path = os.path.join(tmp_path, "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is kr.ReversibleModel
    assert loaded.reversal_settings == model.reversal_settings
    assert len(loaded.weights) == len(model.weights)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    np.testing.assert_array_equal(loaded.reconstruct(x), model.reconstruct(x))
    hist = loaded.fit(x, y, epochs=1, verbose=0).history  # tensorflow#38103: custom step kept
    assert hist["racecar_loss"][0] > 0 and "latent_loss" in hist


def test_to_standard_predicts_identically_and_is_independent():
    model = _bn_model()
    model.compile("sgd", CE)
    x, y = _data(8, (12, 12, 3), 5)
    model.fit(x, y, epochs=1, verbose=0)
    std = model.to_standard()
    assert type(std) is not kr.ReversibleModel
    np.testing.assert_array_equal(std.predict(x, verbose=0), model.predict(x, verbose=0))
    before = model.predict(x, verbose=0)
    std.compile("sgd", CE)
    hist = std.fit(x, y, epochs=1, verbose=0).history
    assert set(hist) == {"loss"}
    np.testing.assert_array_equal(model.predict(x, verbose=0), before)


def test_to_standard_can_drop_regularizers():
    import zoo

    model = zoo.racecar_mi_net(kernel_regularizer=kr.SRIP(0.1))
    kept, dropped = model.to_standard(), model.to_standard(keep_regularizers=False)
    assert len(kept.losses) == 6 and dropped.losses == []
    assert all(layer.kernel_regularizer is None for layer in dropped.layers if layer.weights)
    x = RNG.uniform(-1, 1, size=(4, 12)).astype("float32")
    np.testing.assert_array_equal(dropped.predict(x, verbose=0), model.predict(x, verbose=0))


def test_transform_output_raises_random_non_max_entries():
    o = tf.nn.softmax(tf.constant(RNG.normal(size=(64, 10)), tf.float32))
    t = losses.transform_output(o, num_entries=3, closeness=0.9, seed=tf.constant([1, 2]))
    changed = np.abs(t.numpy() - o.numpy()) > 1e-9
    assert (changed.sum(axis=1) <= 3).all() and changed.sum() > 64 * 2
    np.testing.assert_array_equal(np.argmax(o, 1)[:, None] == np.arange(10), (t.numpy() == o.numpy().max(1, keepdims=True)) & ~changed)
    raised = t.numpy()[changed]
    np.testing.assert_allclose(raised, np.repeat(0.9 * o.numpy().max(1), changed.sum(1)), rtol=1e-6)
    t2 = losses.transform_output(o, num_entries=3, closeness=0.9, seed=tf.constant([1, 3]))
    assert not np.array_equal(t.numpy(), t2.numpy())


def test_srip_matches_exact_spectral_norm():
    w = RNG.normal(size=(3, 3, 4, 6)).astype("float32")
    m = w.reshape(-1, 6)
    exact = np.linalg.norm(m.T @ m - np.eye(6), ord=2)
    reg = kr.SRIP(beta=1.0, power_iterations=50)
    assert float(reg(tf.constant(w))) == pytest.approx(exact, rel=1e-3)
    q, _ = np.linalg.qr(RNG.normal(size=(8, 5)))
    assert float(reg(tf.constant(q, tf.float32))) < 1e-4
    assert keras.regularizers.deserialize(keras.regularizers.serialize(reg)).get_config() == reg.get_config()


def test_srip_is_reported_as_ortho_loss():
    inputs = keras.Input((6,))
    h = L.Dense(5, activation="tanh", kernel_regularizer=kr.SRIP(1e-2))(inputs)
    outputs = L.Dense(2, kernel_regularizer=keras.regularizers.L2(1e-3))(h)
    model = kr.ReversibleModel(inputs, outputs, depth=0)
    model.compile("adam", CE)
    hist = model.fit(RNG.normal(size=(8, 6)).astype("float32"), np.zeros(8, "int32"), verbose=0).history
    assert hist["ortho_loss"][0] > 0 and hist["regularization_loss"][0] > 0
    assert hist["loss"][0] == pytest.approx(
        hist["task_loss"][0] + hist["ortho_loss"][0] + hist["regularization_loss"][0], rel=1e-5)
