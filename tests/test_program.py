"""ReverseProgram, the public reverse pass, and the loss-term objects."""

import keras
import numpy as np
import pytest

import keras_reversible as kr
from keras_reversible import graph as graph_lib
from keras_reversible import terms as terms_lib

L = keras.layers


def _model(**settings):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 2))
    x = L.Conv2D(3, 3, padding="same", activation="relu", name="c1")(inputs)
    x = L.MaxPooling2D(name="pool")(x)
    x = L.Conv2D(4, 3, padding="same", activation="relu", name="c2")(x)
    outputs = L.Dense(5, name="fc")(L.Flatten()(x))
    return kr.ReversibleModel(inputs, outputs, **settings)


X = np.random.default_rng(0).uniform(size=(4, 6, 6, 2)).astype("float32")


def test_forward_reverse_pairs_reconstruct_agree_with_the_model():
    model = _model(input_range="relu")
    program = model.reverse_program
    assert isinstance(program, kr.ReverseProgram)
    assert program.num_constrained == model.num_constrained == 3
    y_pred, taps = program.forward(X)
    np.testing.assert_allclose(y_pred, model(X), rtol=1e-5, atol=1e-6)
    assert set(program.constrained) <= set(taps) and set(program.input_keys) <= set(taps)
    back = program.reverse(taps)
    np.testing.assert_allclose(back[program.input_keys[0]], program.reconstruct(X), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(program.reconstruct(X), model.reconstruct(X), rtol=1e-5, atol=1e-6)
    pairs = program.pairs(X, depth=2)
    assert len(pairs) == 2
    for (l, l_rev), (want_l, want_rev) in zip(pairs, model.reverse_activations(X, depth=2)):
        np.testing.assert_allclose(l, want_l, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(l_rev, want_rev, rtol=1e-5, atol=1e-6)
    assert "constrained points" in program.describe()


def test_reverse_from_another_start():
    program = _model().reverse_program
    _, taps = program.forward(X)
    start = taps[graph_lib.key(program.graph.start)]
    a = program.reverse(taps)[program.input_keys[0]]
    b = program.reverse(taps, start=2.0 * start)[program.input_keys[0]]
    np.testing.assert_allclose(b, 2.0 * a, rtol=1e-5, atol=1e-6)  # no range ops: linear


def test_terms_sum_to_the_loss_and_a_zero_weight_is_none():
    model = _model(racecar_weight=0.5, latent_generation=True)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    y = np.arange(4) % 5
    _, terms = model.compute_loss_terms(X, y)
    assert list(terms) == ["task_loss", "racecar_loss", "latent_loss", "ortho_loss",
                           "regularization_loss"]
    assert terms["ortho_loss"] is None and terms["regularization_loss"] is None
    ev = model.evaluate(X, y, verbose=0, return_dict=True)
    total = sum(float(v) for v in terms.values() if v is not None)
    assert ev["loss"] == pytest.approx(total, rel=1e-5)
    off = _model(racecar_weight=0.0)
    _, taps = off.reverse_program.forward(X)
    term = terms_lib.RacecarTerm(off.reverse_program, [0.0, 0.0, 0.0], "mean")
    assert not term.enabled and term.value(taps, False) is None


def test_regularization_terms_sort_srip_apart():
    ortho, other = terms_lib.regularization_terms()
    inputs = keras.Input((4,))
    h = L.Dense(3, kernel_regularizer=kr.SRIP(1e-2), name="a")(inputs)
    outputs = L.Dense(2, kernel_regularizer="l2", name="b")(h)
    model = kr.ReversibleModel(inputs, outputs)
    assert [v.path for v in ortho.variables(model.trainable_weights)] == ["a/kernel"]
    assert [v.path for v in other.variables(model.trainable_weights)] == ["b/kernel"]
    model.compile("sgd", "mse")
    hist = model.fit(np.ones((4, 4)), np.zeros((4, 2)), verbose=0).history
    assert hist["ortho_loss"][0] > 0 and hist["regularization_loss"][0] > 0
