"""``ReversibleModel.generate_latent``: the RNL quantities of RN alg. 1 / fig. 3b."""

import keras
import numpy as np
import pytest

import keras_reversible as kr

L = keras.layers
RNG = np.random.default_rng(3)


def _model(**settings):
    inputs = keras.Input((6,))
    h = L.Dense(5, activation="relu", name="fc1")(inputs)
    outputs = L.Dense(4, activation="softmax", name="fc2")(h)
    return kr.ReversibleModel(inputs, outputs, depth=1, **settings)


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_generate_latent_matches_rn_eq8_by_hand():
    model = _model(latent_generation={"num_entries": 2, "closeness": 0.8})
    x = RNG.normal(size=(7, 6)).astype("float32")
    g = model.generate_latent(x)
    (w1, b1), (w2, b2) = [model.get_layer(n).get_weights() for n in ("fc1", "fc2")]
    o = g["output"]
    np.testing.assert_allclose(o, model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    # tr(o): two non-max entries per row raised to 0.8 * max, the rest kept.
    t = g["transformed"]
    changed = ~np.isclose(t, o)
    assert (changed.sum(axis=1) == 2).all()
    assert not changed[np.arange(7), o.argmax(axis=1)].any()
    np.testing.assert_allclose(t[changed], np.repeat(0.8 * o.max(axis=1), 2), rtol=1e-5)
    # α̂ = relu(W2ᵀ(tr(o) − b2)) (relu: fc1's activation), ô = softmax(α̂ W2 + b2).
    alpha = np.maximum((t - b2) @ w2.T, 0)
    np.testing.assert_allclose(g["latent"], alpha, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(g["latent_output"], _softmax(alpha @ w2 + b2), rtol=1e-4, atol=1e-5)
    # Reconstructions: x̄ from o (= reconstruct) and from tr(o): W1ᵀ(α̂ − b1).
    np.testing.assert_allclose(g["reconstruction"], model.reconstruct(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g["latent_reconstruction"], (alpha - b1) @ w1.T, rtol=1e-4, atol=1e-5)


def test_generate_latent_is_the_latent_loss_input():
    """The latent loss of ``evaluate`` is the task loss of ``ô`` (step 0 before training)."""
    model = _model(latent_generation={"weight": 0.5, "seed": 7})
    model.compile("sgd", "sparse_categorical_crossentropy")
    x = RNG.normal(size=(8, 6)).astype("float32")
    y = np.arange(8) % 4
    ev = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    o_hat = model.generate_latent(x)["latent_output"]
    ce = -np.mean(np.log(o_hat[np.arange(8), y]))
    assert ev["latent_loss"] == pytest.approx(0.5 * ce, rel=1e-4)


def test_generate_latent_without_rnl_and_from_an_inner_layer():
    model = _model(reverse_from="fc1")  # latent generation off: defaults are used
    g = model.generate_latent(RNG.normal(size=(3, 6)).astype("float32"))
    assert g["latent"].shape == (3, 5)
    assert "latent_reconstruction" not in g  # the reverse pass does not start at o
