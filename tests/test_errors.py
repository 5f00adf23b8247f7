"""Bad input: clear errors that name the argument / layer and the value."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_reversible as kr
import zoo

L = keras.layers


class Mystery(L.Layer):
    def call(self, x):
        return x * 2.0


def test_unsupported_layer_names_layer_class_and_fix():
    inputs = keras.Input((4,))
    outputs = L.Dense(2)(Mystery(name="mystery_op")(L.Dense(3)(inputs)))
    with pytest.raises(kr.UnsupportedLayerError) as err:
        kr.ReversibleModel(inputs, outputs)
    msg = str(err.value)
    assert "'mystery_op'" in msg and "Mystery" in msg and "register_reverse_rule" in msg
    assert isinstance(err.value, ValueError)


def test_unsupported_layer_after_reverse_from_is_fine():
    inputs = keras.Input((4,))
    h = L.Dense(3, name="i_r")(inputs)
    model = kr.ReversibleModel(inputs, Mystery()(h), reverse_from="i_r")
    assert model.num_constrained == 1


def test_a_nested_subclassed_model_is_refused_by_name():
    # A nested functional or Sequential model is walked into (test_any_model.py);
    # a subclassed one has no graph to walk.
    class Inner(keras.Model):
        def __init__(self):
            super().__init__(name="inner")
            self.dense = L.Dense(3)

        def call(self, x):
            return self.dense(x)

    inputs = keras.Input((4,))
    with pytest.raises(kr.UnsupportedLayerError, match="'inner' is a nested Inner that is not"):
        kr.ReversibleModel(inputs, L.Dense(2)(Inner()(inputs)))


def test_depth_larger_than_weight_layers():
    with pytest.raises(ValueError, match=r"depth=4 .* only 3 points .*conv1, conv2, conv3"):
        zoo.racecar_mnist_cnn(depth=4)


@pytest.mark.parametrize("weight,match", [
    ([1e-5, 1e-5], r"racecar_weight has 2 entries but depth is 3"),
    ([1e-5, -1.0, 1e-5], r"racecar_weight entries must be finite and >= 0, got -1.0"),
    (float("nan"), r"must be finite"),
])
def test_bad_racecar_weight(weight, match):
    with pytest.raises(ValueError, match=match):
        zoo.racecar_mnist_cnn(racecar_weight=weight)


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(racecar_weight="big"), TypeError, r"racecar_weight must be a float.*'big'"),
    (dict(depth=1.5), TypeError, r"depth must be an int or None, got float: 1.5"),
    (dict(depth=-1), ValueError, r"depth must be >= 0, got -1"),
    (dict(reduction="sum"), ValueError, r"reduction must be one of .* got 'sum'"),
    (dict(input_range="sigmoidal"), ValueError, r"input_range: unknown activation 'sigmoidal'"),
    (dict(input_range=3), TypeError, r"input_range must be None.*got int: 3"),
    (dict(max_pool_reverse="argmax"), ValueError, r"max_pool_reverse must be one of"),
    (dict(upsample_reverse="avg"), ValueError, r"upsample_reverse must be one of"),
    (dict(reverse_from=3), TypeError, r"reverse_from must be a layer name"),
    (dict(latent_generation={"closness": 0.9}), ValueError, r"unknown keys \['closness'\]"),
    (dict(latent_generation={"closeness": 1.5}), ValueError, r"closeness'\] must be in \(0, 1\], got 1.5"),
    (dict(latent_generation="yes"), TypeError, r"latent_generation must be None"),
])
def test_bad_settings(kwargs, error, match):
    with pytest.raises(error, match=match):
        zoo.racecar_mnist_cnn(**kwargs)


def test_reverse_from_unknown_layer_suggests_names():
    with pytest.raises(ValueError, match=r"reverse_from='conv_3' names no layer .* Did you mean \['conv3'"):
        zoo.racecar_mnist_cnn(reverse_from="conv_3")


def test_subclassed_model_is_refused():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = L.Dense(2)

        def call(self, x):
            return self.dense(x)

    net = Net()
    net(np.zeros((1, 3), "float32"))
    with pytest.raises(TypeError, match=r"functional or Sequential .* is a Net"):
        kr.make_reversible(net)


def test_multi_output_model_needs_reverse_from():
    inputs = keras.Input((4,))
    h = L.Dense(3, name="trunk")(inputs)
    outs = [L.Dense(2)(h), L.Dense(1)(h)]
    with pytest.raises(ValueError, match="has 2 outputs; pass reverse_from"):
        kr.ReversibleModel(inputs, outs)
    assert kr.ReversibleModel(inputs, outs, reverse_from="trunk").num_constrained == 1


def test_nan_in_data_stops_training_without_touching_weights():
    model = zoo.racecar_mnist_cnn()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).uniform(size=(8, 28, 28, 1)).astype("float32")
    x[3, 5, 5, 0] = np.nan
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(tf.errors.InvalidArgumentError, match="contains NaN or Inf"):
        model.fit(x, np.zeros(8, "int32"), epochs=1, verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(tf.errors.InvalidArgumentError, match="contains NaN or Inf"):
        model.evaluate(x, np.zeros(8, "int32"), verbose=0)
