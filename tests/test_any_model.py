"""Beyond the papers' layers (DESIGN §7): raw ops, pointwise regions, gates, nesting, unknown layers."""

import re
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_reversible as kr
from keras_reversible import registry

L = keras.layers
OPS = keras.ops


def _x(shape, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, size=(3, *shape)).astype("float32")


def _conv_net(activation, filters=4):
    """conv → activation(·) → conv: the activation's range op sits at the second conv's input."""
    inputs = keras.Input((6, 6, 2))
    h = L.Conv2D(filters, 3, padding="same", name="c1")(inputs)
    h = activation(h)
    outputs = L.Conv2D(3, 3, padding="same", name="c2")(h)
    return keras.Model(inputs, outputs)


def _same_reverse(model_a, model_b, x):
    """Both models have the same weights; their reverse passes must agree."""
    model_b.set_weights(model_a.get_weights())
    a, b = kr.make_reversible(model_a), kr.make_reversible(model_b)
    assert a.num_constrained == b.num_constrained
    for (fa, ra), (fb, rb) in zip(a.reverse_activations(x), b.reverse_activations(x)):
        np.testing.assert_allclose(fa, fb, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ra, rb, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.reconstruct(x), b.reconstruct(x), rtol=1e-5, atol=1e-6)
    return a, b


def test_raw_op_hard_swish_is_one_pointwise_op():
    raw, layer = _same_reverse(
        _conv_net(lambda h: h * OPS.relu6(h + 3.0) / 6.0),
        _conv_net(L.Activation("hard_swish")), _x((6, 6, 2)))
    summary = []
    raw.reverse_summary(print_fn=summary.append)
    assert "range ops: pointwise(" in summary[0]


def test_swish_written_out_is_one_pointwise_op():
    _same_reverse(_conv_net(lambda h: L.Multiply()([h, L.Activation("sigmoid")(h)])),
                  _conv_net(L.Activation("swish")), _x((6, 6, 2)))


def test_a_lone_bias_is_subtracted_not_a_range_op():
    # relu(x + 3): no two tensors combined, so op by op: the reverse subtracts 3.
    model = kr.make_reversible(_conv_net(lambda h: L.ReLU()(h + 3.0)))
    kinds = [step.rule.kind for step in model.reverse_program.graph.steps]
    assert "structural" in kinds and "pointwise" in kinds


def _squeeze_excite():
    inputs = keras.Input((6, 6, 4))
    x = L.Conv2D(4, 3, padding="same", name="conv")(inputs)
    g = L.GlobalAveragePooling2D(keepdims=True)(x)
    g = L.Conv2D(2, 1, activation="relu", name="se_reduce")(g)
    g = L.Conv2D(4, 1, activation="sigmoid", name="se_expand")(g)
    y = L.Multiply(name="gate")([x, g])
    outputs = L.Dense(3, name="head")(L.Flatten()(y))
    return keras.Model(inputs, outputs)


def test_a_gate_sends_nothing_into_its_branch():
    model = kr.make_reversible(_squeeze_excite(), racecar_weight=1.0)
    program = model.reverse_program
    assert [layer.name for layer in program.weight_layers] == ["conv", "head"]  # not se_*
    # The gate is data: from a fixed start, the reverse pass has no gradient into its branch.
    x = _x((6, 6, 4))
    variables = model.trainable_weights
    with tf.GradientTape() as tape:
        _, taps = program.forward(x, training=False)
        back = program.reverse(taps, start=tf.ones((3, 3)))
        total = sum(tf.reduce_sum(v) for v in back.values())
    grads = dict(zip([v.path for v in variables], tape.gradient(total, variables)))
    assert all(grads[p] is None for p in grads if p.startswith("se_")), grads.keys()
    assert grads["head/kernel"] is not None and grads["conv/kernel"] is not None


def _stem_and_head(nested):
    """The same layers flat, or with the stem and the whole backbone as nested models."""
    stem = [L.Conv2D(4, 3, padding="same", name="stem_conv"),
            L.BatchNormalization(name="stem_bn"), L.ReLU(name="stem_relu")]
    block = [L.Conv2D(4, 3, padding="same", name="block_conv"), L.ReLU(name="block_relu")]
    head = [L.GlobalAveragePooling2D(name="gap"), L.Dense(3, name="fc")]
    inputs = keras.Input((6, 6, 2))
    if not nested:
        x = inputs
        for layer in (*stem, *block, *head):
            x = layer(x)
        return keras.Model(inputs, x)
    stem_model = keras.Sequential([keras.Input((6, 6, 2)), *stem], name="stem")
    backbone_in = keras.Input((6, 6, 2))
    h = stem_model(backbone_in)
    for layer in block:
        h = layer(h)
    backbone = keras.Model(backbone_in, h, name="backbone")
    x = backbone(inputs)
    for layer in head:
        x = layer(x)
    return keras.Model(inputs, x)


def test_nested_models_reverse_like_the_flat_graph():
    x = _x((6, 6, 2))
    flat, nested = _same_reverse(_stem_and_head(False), _stem_and_head(True), x)
    assert [layer.name for layer in nested.reverse_program.weight_layers] == [
        "stem_conv", "block_conv", "fc"]
    nested.compile("sgd", "mse")
    history = nested.fit(x, np.zeros((3, 3), "float32"), epochs=1, verbose=0).history
    assert history["racecar_loss"][0] > 0


class Scale(L.Layer):
    """A linear custom layer with no rule: ``γ ⊙ x``."""

    def build(self, shape):
        self.gamma = self.add_weight(shape=(shape[-1],), initializer="ones")

    def call(self, x):
        return x * self.gamma


def _with_scale():
    inputs = keras.Input((5,))
    h = L.Dense(4, name="d1")(inputs)
    h = Scale(name="scale")(h)
    return keras.Model(inputs, L.Dense(2, name="d2")(h))


def test_unknown_layers_error_by_default_and_name_the_fix():
    with pytest.raises(registry.UnsupportedLayerError,
                       match=r"'scale'.*register_reverse_rule.*unknown_layers=\"linearize\""):
        kr.make_reversible(_with_scale())


def test_linearize_is_the_exact_transpose_of_a_linear_layer():
    model = _with_scale()
    model.get_layer("scale").gamma.assign([0.5, 2.0, -1.0, 3.0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        linearized = kr.make_reversible(model, unknown_layers="linearize")
    assert sum("'scale'" in str(w.message) for w in caught) == 1
    summary = []
    linearized.reverse_summary(print_fn=summary.append)
    assert "linearized (no reverse rule; the transpose of the Jacobian): 'scale'" in summary[0]
    # The same pass as with a hand-written rule, γ ⊙ y.
    x = _x((5,))
    expected = model.get_layer("d1").kernel.numpy() @ (
        np.array([0.5, 2.0, -1.0, 3.0], "float32") * (
            (model.get_layer("d2").kernel.numpy() @ (
                model.predict(x, verbose=0) - model.get_layer("d2").bias.numpy()).T).T
            - 0.0)).T
    assert expected.shape == (5, 3)
    np.testing.assert_allclose(linearized.reconstruct(x), expected.T, rtol=1e-4, atol=1e-5)


def test_the_advice_for_a_raw_op_without_a_rule_works_as_printed(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", registry.registered())  # undone after the test
    inputs = keras.Input((5,))
    h = OPS.cumsum(L.Dense(5, name="d1")(inputs), axis=1)
    model = keras.Model(inputs, L.Dense(2, name="d2")(h))
    with pytest.raises(registry.UnsupportedLayerError) as error:
        kr.make_reversible(model)
    advice = re.search(r'register_reverse_rule\("([\w.]+)", kind=', str(error.value))
    assert advice, str(error.value)

    @kr.register_reverse_rule(advice.group(1), kind="structural")
    def _(op, y):  # cumsum's transpose: a reversed cumulative sum
        return OPS.flip(OPS.cumsum(OPS.flip(y, axis=1), axis=1), axis=1)

    reversible = kr.make_reversible(model)
    assert reversible.num_constrained == 2
