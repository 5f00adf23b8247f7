"""Bad inputs to the model surface (issue 18): clear errors, and no call breaks a later one."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_reversible as kr
import zoo

L = keras.layers
METHODS = ("reconstruct", "reverse_activations", "generate_latent")


@pytest.fixture(scope="module")
def model():
    inputs = keras.Input((8, 8, 1), name="image")
    h = L.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    outputs = L.Dense(3, name="fc")(L.Flatten()(h))
    return kr.ReversibleModel(inputs, outputs)


def _x(n=5, size=8):
    return np.random.default_rng(0).random((n, size, size, 1)).astype("float32")


@pytest.mark.parametrize("method", METHODS)
def test_a_bad_call_does_not_poison_later_calls(model, method):
    # Before: rank 3 went through (Keras added the channel axis) and relaxed
    # the cached tf.function to an unknown shape; every later call failed.
    call = getattr(model, method)
    with pytest.raises(ValueError, match=r"'image' expects rank 4, shape \(batch, 8, 8, 1\); "
                                         r"x has shape \(5, 8, 8\)"):
        call(_x()[..., 0])
    out = call(_x())
    first = out[0][1] if method == "reverse_activations" else out
    assert (first["output"] if method == "generate_latent" else first).shape[0] == 5


@pytest.mark.parametrize("method", METHODS)
def test_a_wrong_spatial_size_fails_whatever_came_before(model, method):
    # Before: after one good call, a 9x9 batch gave an 8x8 result silently.
    call = getattr(model, method)
    call(_x())
    with pytest.raises(ValueError, match=r"expects shape \(batch, 8, 8, 1\); x has shape "
                                         r"\(2, 9, 9, 1\)"):
        call(_x(2, size=9))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("x,error,match", [
    (np.zeros((0, 8, 8, 1), "float32"), ValueError, r"x is empty \(0 examples\)"),
    (np.zeros((8, 8, 1), "float32"), ValueError, r"single example without its batch axis"),
    ("image.png", TypeError, r"'image' must be a numeric array, got a string"),
    (np.array([["a"]]), TypeError, r"must be a numeric array, got dtype <U1"),
    ([[1.0, 2.0], [3.0]], TypeError, r"'image' is not an array"),
    ([np.zeros((2, 8, 8, 1)), np.zeros((2, 8, 8, 1))], ValueError,
     r"model '\w+' has 1 inputs \('image'\); x holds 2"),
])
def test_bad_x_is_named(model, method, x, error, match):
    with pytest.raises(error, match=match):
        getattr(model, method)(x)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("batch_size,error", [
    (0, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError), ("8", TypeError)])
def test_bad_batch_size(model, method, batch_size, error):
    with pytest.raises(error, match=rf"{method}: batch_size must be a positive int, got "):
        getattr(model, method)(_x(), batch_size=batch_size)


@pytest.mark.parametrize("depth,error", [(True, TypeError), (1.5, TypeError), (3, ValueError)])
def test_reverse_activations_depth_must_be_an_int(model, depth, error):
    # Before: True was taken as 1 and 1.5 failed with a slicing TypeError.
    with pytest.raises(error, match="reverse_activations: depth must be"):
        model.reverse_activations(_x(), depth=depth)


def test_nested_lists_and_datasets_are_accepted(model):
    x = _x(6)
    expected = model.reconstruct(x)
    # Batches of 4 + 2 and one of 6 may sum in a different order: float32 noise only.
    close = dict(rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(model.reconstruct(x.tolist()), expected, **close)
    dataset = tf.data.Dataset.from_tensor_slices((x, np.zeros(6))).batch(4)
    np.testing.assert_allclose(model.reconstruct(dataset), expected, **close)
    pairs = model.reverse_activations(dataset)
    np.testing.assert_allclose(pairs[0][1], model.reverse_activations(x)[0][1], **close)
    latent = model.generate_latent(tf.data.Dataset.from_tensor_slices(x).batch(6))
    np.testing.assert_allclose(latent["latent"], model.generate_latent(x)["latent"],
                               rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("method", METHODS)
def test_unbatched_dataset_is_named(model, method):
    dataset = tf.data.Dataset.from_tensor_slices(_x())
    with pytest.raises(ValueError, match=r"batch 0 of the dataset has shape \(8, 8, 1\).*"
                                         r"dataset.batch\(n\)"):
        getattr(model, method)(dataset)


def test_multi_input_batches_of_different_sizes():
    a, b = keras.Input((3,), name="a"), keras.Input((2,), name="b")
    outputs = L.Dense(2)(L.Concatenate()([L.Dense(4)(a), L.Dense(4)(b)]))
    model = kr.ReversibleModel([a, b], outputs)
    xa, xb = np.ones((4, 3), "float32"), np.ones((3, 2), "float32")
    with pytest.raises(ValueError, match=r"different batch sizes \[4, 3\] \(for 'a', 'b'\)"):
        model.reconstruct([xa, xb])
    with pytest.raises(ValueError, match=r"has 2 inputs \('a', 'b'\); x holds 1"):
        model.reconstruct(xa)
    out = model.reconstruct([xa, xb[:1].repeat(4, 0)])
    assert [o.shape for o in out] == [(4, 3), (4, 2)]


# --------------------------------------------------------------------------
# Misspelt keywords


def test_misspelt_keywords_name_the_closest_setting():
    base = zoo.racecar_mi_net()
    with pytest.raises(TypeError, match=r"make_reversible\(\) got an unexpected keyword "
                                        r"argument 'racecar_wieght'; did you mean 'racecar_weight'"):
        kr.make_reversible(base, racecar_wieght=0.1)
    with pytest.raises(TypeError, match=r"ReversibleModel\(\) got an unexpected keyword "
                                        r"argument 'racecar_wieght'; did you mean 'racecar_weight'"):
        kr.ReversibleModel(base.inputs, base.outputs, racecar_wieght=0.1)
    with pytest.raises(TypeError, match=r"ReversibleModel\(\) .* 'dtype'"):
        kr.ReversibleModel(base.inputs, base.outputs, dtype="float16")  # keras would ignore it
    with pytest.raises(TypeError, match=r"racecar_mnist_cnn\(\) got an unexpected keyword "
                                        r"argument 'racecar_wieght'; did you mean 'racecar_weight'"):
        zoo.get("racecar_mnist_cnn", racecar_wieght=0.1)
    with pytest.raises(TypeError, match=r"rn_baseline\(\) got an unexpected keyword "
                                        r"argument 'weights'; valid keywords: .*num_classes"):
        zoo.rn_baseline(weights="cifar10")  # no presets: no weights argument
    with pytest.raises(TypeError, match=r"smoke_discriminator\(\) .* 'widht'; did you mean 'width'"):
        zoo.smoke_discriminator(widht=0.5)


def test_valid_keywords_still_pass():
    model = zoo.get("racecar_mi_net", trainable=False, depth=2, num_classes=2)
    assert not model.trainable and model.depth == 2
    assert kr.make_reversible(model, reverse_from="fc3").num_constrained == 3


# --------------------------------------------------------------------------
# Construction


def test_reverse_from_the_input_layer_says_so():
    # Before: "must be called exactly once (it has 0 calls)".
    with pytest.raises(ValueError, match=r"reverse_from='image' is the input of model "
                                         r"'racecar_mnist_cnn'"):
        zoo.racecar_mnist_cnn(reverse_from="image")


class _Widen(L.Layer):
    def call(self, x):
        return x[:, :3]


def test_a_rule_with_the_wrong_shape_fails_at_build():
    # Before: fit failed with "Dimensions must be equal ... {{node sub_1}}".
    @kr.register_reverse_rule(_Widen)
    def widen_wrongly(layer, y):
        return tf.concat([y, y], axis=-1)

    inputs = keras.Input((4,))
    outputs = L.Dense(2)(_Widen(name="widen")(L.Dense(4)(inputs)))
    with pytest.raises(ValueError, match=r"reverse rule 'test_a_rule_with_the_wrong_shape_fails"
                                         r"_at_build.<locals>.widen_wrongly' of layer 'widen' "
                                         r"\(_Widen\) returned shape \(None, 6\) for input 0, "
                                         r"whose shape is \(None, 4\)"):
        kr.ReversibleModel(inputs, outputs)


# --------------------------------------------------------------------------
# calibrate_reverse_statistics


def _bn_model():
    inputs = keras.Input((6,), name="features")
    h = L.Dense(5, name="fc1")(inputs)
    h = L.BatchNormalization(name="bn")(h)
    h = L.Dense(4, activation="relu", name="fc2")(h)
    return kr.ReversibleModel(inputs, L.Dense(3, name="fc3")(h))


def _values(model):
    return [v.numpy().copy() for v in model.reverse_statistics]


def test_calibration_refuses_nan_and_keeps_the_statistics():
    model = _bn_model()
    x = np.random.default_rng(1).normal(size=(32, 6)).astype("float32")
    model.calibrate_reverse_statistics(x)
    before = _values(model)
    bad = x.copy()
    bad[20, 3] = np.nan
    with pytest.raises(ValueError, match=r"batch 1 of x contains NaN or Inf"):
        model.calibrate_reverse_statistics(bad, batch_size=16)
    for v, old in zip(model.reverse_statistics, before):
        np.testing.assert_array_equal(v.numpy(), old)
    dataset = tf.data.Dataset.from_tensor_slices(bad).batch(16)
    with pytest.raises(ValueError, match=r"batch 1 of x contains NaN or Inf"):
        model.calibrate_reverse_statistics(dataset)
    for v, old in zip(model.reverse_statistics, before):
        np.testing.assert_array_equal(v.numpy(), old)  # batch 0 was folded in, then undone
    assert np.isfinite(model.reconstruct(x)).all()


def test_calibration_refuses_non_finite_statistics():
    # A finite input whose reverse signal overflows (as float16 does).
    model = _bn_model()
    before = _values(model)
    model.get_layer("fc3").kernel.assign(model.get_layer("fc3").kernel * 1e30)
    x = np.random.default_rng(1).normal(size=(16, 6)).astype("float32")
    with pytest.raises(ValueError, match=r"non-finite reverse statistics \(bn_reverse_moving"):
        model.calibrate_reverse_statistics(x)
    for v, old in zip(model.reverse_statistics, before):
        np.testing.assert_array_equal(v.numpy(), old)


@pytest.mark.parametrize("with_bn", [True, False])
def test_calibration_of_empty_or_unbatched_x_is_the_same_error_with_or_without_bn(with_bn):
    # Before: an empty array raised for a model with BN and returned 0 without;
    # an unbatched dataset failed with "as_list() is not defined".
    model = _bn_model() if with_bn else zoo.racecar_mi_net()
    width = 6 if with_bn else 12
    with pytest.raises(ValueError, match=r"calibrate_reverse_statistics: x is empty"):
        model.calibrate_reverse_statistics(np.zeros((0, width), "float32"))
    unbatched = tf.data.Dataset.from_tensor_slices(np.zeros((4, width), "float32"))
    with pytest.raises(ValueError, match=r"batch 0 of the dataset has shape \(\d+,\).*"
                                         r"single example without its batch axis"):
        model.calibrate_reverse_statistics(unbatched)


# --------------------------------------------------------------------------
# Further cases found while fixing the above


@pytest.mark.parametrize("step,error", [(1.5, TypeError), ("1", TypeError), (True, TypeError),
                                        (-1, ValueError)])
def test_generate_latent_step_must_be_a_non_negative_int(model, step, error):
    # Before: 1.5 and "1" failed inside tf.constant; -1 and True were taken.
    with pytest.raises(error, match=r"generate_latent: step must be an int >= 0"):
        model.generate_latent(_x(), step=step)


@pytest.mark.parametrize("method", ["reconstruct", "reverse_activations"])
def test_training_must_be_a_bool(model, method):
    # Before: any value was taken (and cached a function per value).
    with pytest.raises(TypeError, match=rf"{method}: training must be True or False, got str"):
        getattr(model, method)(_x(), training="yes")


def test_dict_inputs_with_the_wrong_keys():
    a, b = keras.Input((3,), name="a"), keras.Input((2,), name="b")
    outputs = L.Dense(2)(L.Concatenate()([L.Dense(4)(a), L.Dense(4)(b)]))
    model = kr.ReversibleModel({"a": a, "b": b}, outputs)
    xa, xb = np.ones((4, 3), "float32"), np.ones((4, 2), "float32")
    with pytest.raises(ValueError, match=r"x has the keys \['a', 'c'\]; the model's inputs "
                                         r"are \['a', 'b'\]"):
        model.reconstruct({"a": xa, "c": xb})
    out = model.reconstruct({"b": xb, "a": xa})
    assert [o.shape for o in out] == [(4, 3), (4, 2)]
