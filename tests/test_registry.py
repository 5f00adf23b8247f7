"""The reverse-rule registry (keras_reversible.registry): registration and lookup."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_reversible as kr
from keras_reversible import registry

L = keras.layers
RNG = np.random.default_rng(0)


def _dot(a, b):
    return float(tf.reduce_sum(tf.cast(a, tf.float64) * tf.cast(b, tf.float64)))


def test_register_custom_rule_and_lookup_by_subclass():
    class Triple(L.Layer):
        def call(self, x):
            return 3.0 * x

    class MyConv(L.Conv2D):
        pass

    kr.register_reverse_rule(Triple)(lambda layer, y: 3.0 * y)
    inputs = keras.Input((5, 5, 1))
    outputs = Triple()(MyConv(2, 3, padding="same", use_bias=False)(inputs))
    model = kr.ReversibleModel(inputs, outputs)
    assert registry.rule_for(model.layers[1]).kind == "weight"  # found through the MRO
    x = tf.constant(RNG.normal(size=(2, 5, 5, 1)), tf.float32)
    y = tf.constant(RNG.normal(size=(2, 5, 5, 2)), tf.float32)
    graph = model.reverse_program.graph
    back = graph.run(y, {}, training=False)[graph.input_keys[0]]
    assert _dot(model(x), y) == pytest.approx(_dot(x, back), rel=1e-4)


def test_register_rejects_bad_arguments():
    with pytest.raises(TypeError, match="keras.Operation subclass, or a qualified class name"):
        kr.register_reverse_rule(int)
    with pytest.raises(TypeError, match="qualified class name"):
        kr.register_reverse_rule("Pad")  # a bare name could match any class
    with pytest.raises(ValueError, match="kind must be one of"):
        kr.register_reverse_rule(L.Layer, kind="linear")


def test_a_two_argument_rule_is_wrapped_once_at_registration():
    class Halve(L.Layer):
        def call(self, x):
            return 0.5 * x

    calls = []

    def halve_transpose(layer, y):
        calls.append(layer)
        return 0.5 * y

    assert kr.register_reverse_rule(Halve)(halve_transpose) is halve_transpose
    rule = registry.rule_for(Halve())
    assert rule.kind == "structural" and rule.range_op is None
    assert rule.name.endswith("halve_transpose")
    layer = Halve()
    y = tf.ones((2, 3))
    np.testing.assert_allclose(rule.transpose(layer, y, registry.ReverseContext([(None, 3)])), 0.5)
    assert calls == [layer]


def test_a_three_argument_rule_is_registered_as_it_is():
    class Same(L.Layer):
        def call(self, x):
            return x

    def transpose(layer, y, ctx):
        return y

    kr.register_reverse_rule(Same, transpose, kind="weight")
    assert registry.rule_for(Same()).transpose is transpose


def test_pointwise_rules_have_a_range_op_and_no_transpose():
    class Square(L.Layer):
        def call(self, x):
            return x * x

    kr.register_reverse_rule(Square, kind="pointwise")
    rule = registry.rule_for(Square())
    assert rule.transpose is None and rule.range_op is registry.call_forward

    @kr.register_reverse_rule(Square, kind="pointwise")
    def clipped(layer, x):
        return tf.minimum(x * x, 1.0)

    rule = registry.rule_for(Square())
    assert rule.transpose is None
    np.testing.assert_allclose(rule.range_op(Square(), tf.constant([0.5, 3.0]), None), [0.25, 1.0])
    bn = registry.rule_for(L.BatchNormalization())
    assert bn.kind == "pointwise" and bn.transpose is None and bn.range_op is not None
    identity = registry.rule_for(L.Dropout(0.5))
    assert identity.kind == "identity" and identity.transpose is None and identity.range_op is None


@pytest.mark.parametrize("kind,functions", [
    ("weight", {}),
    ("structural", {"range_op": registry.call_forward}),
    ("pointwise", {"transpose": registry.transpose_of_call}),
    ("pointwise", {}),
    ("identity", {"transpose": registry.transpose_of_call}),
    ("linear", {"transpose": registry.transpose_of_call}),
])
def test_a_rule_has_the_functions_of_its_kind(kind, functions):
    with pytest.raises(ValueError):
        registry.ReverseRule(kind, **functions)


def test_the_reversal_options_default_to_the_papers_choices():
    assert registry.DEFAULT_OPTIONS == {"max_pool_reverse": "upsample",
                                        "upsample_reverse": "max_pool",
                                        "unknown_layers": "error"}
    ctx = registry.ReverseContext([])
    assert ctx.option("max_pool_reverse") == "upsample"
    assert ctx.option("upsample_reverse") == "max_pool"
    ctx = registry.ReverseContext([], options={"max_pool_reverse": "unpool"})
    assert ctx.option("max_pool_reverse") == "unpool"
    assert registry.option({}, "upsample_reverse") == "max_pool"


def test_the_register_reverse_rule_example_runs(capsys):
    doc = kr.register_reverse_rule.__doc__
    (code,) = re.findall(r"```python\n(.*?)```", doc, re.S)
    source = "\n".join(line[4:] for line in code.splitlines())
    exec(compile(source, "register_reverse_rule example", "exec"), {"__name__": "example"})
    assert capsys.readouterr().out.strip() == "2"
