"""Reverse BatchNormalization moving statistics: updates, use, calibration, saving."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_reversible as kr

L = keras.layers
RNG = np.random.default_rng(0)


def _model(momentum=0.99):
    """Conv-BN-ReLU twice and a Dense-BN head: three reverse BN layers, one
    of them on a (batch, features) signal (the unfused path)."""
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(6, 3, padding="same", name="conv1")(inputs)
    x = L.BatchNormalization(momentum=momentum, name="bn1")(x)
    x = L.ReLU()(x)
    x = L.Conv2D(5, 3, padding="same", name="conv2")(x)
    x = L.BatchNormalization(momentum=momentum, name="bn2")(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(7, name="fc1")(x)
    x = L.BatchNormalization(momentum=momentum, name="bn3")(x)
    outputs = L.Dense(3, name="fc2")(x)
    return kr.ReversibleModel(inputs, outputs)


def _data(n=32):
    x = RNG.uniform(size=(n, 8, 8, 3)).astype("float32")
    return x, (np.arange(n) % 3).astype("int32")


def _values(variables):
    return [v.numpy().copy() for v in variables]


def test_one_pair_per_reverse_batch_norm():
    model = _model()
    names = [v.name for v in model.reverse_statistics]
    assert names == [f"bn{i}_reverse_moving_{s}" for i in (1, 2, 3) for s in ("mean", "variance")]
    assert not any(v.trainable for v in model.reverse_statistics)
    plain = keras.Model(model.inputs, model.outputs)
    assert model.count_params() == plain.count_params() + 2 * (6 + 5 + 7)


def test_fit_updates_reverse_statistics_and_not_the_forward_ones():
    model = _model()
    x, y = _data()
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = _values(model.reverse_statistics)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert all(np.any(a != b) for a, b in zip(before, _values(model.reverse_statistics)))

    # The reverse pass alone (training mode) moves the reverse statistics only.
    forward = [layer.moving_mean for layer in model.layers if isinstance(layer, L.BatchNormalization)]
    forward_before = _values(forward)
    reverse_before = _values(model.reverse_statistics)
    _, taps = model.reverse_program.forward(x, False)
    model.reverse_program.reverse(taps, True)
    np.testing.assert_array_equal(np.concatenate(forward_before), np.concatenate(_values(forward)))
    assert all(np.any(a != b) for a, b in zip(reverse_before, _values(model.reverse_statistics)))


def test_no_update_with_zero_racecar_weight():
    model = _model()
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model2 = kr.ReversibleModel(model.inputs, model.outputs, racecar_weight=0.0)
    model2.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _data()
    before = _values(model2.reverse_statistics)
    model2.fit(x, y, batch_size=16, epochs=1, verbose=0)
    for a, b in zip(before, _values(model2.reverse_statistics)):
        np.testing.assert_array_equal(a, b)


def test_calibrated_inference_matches_training_mode_on_one_batch():
    """Forward stats = the batch's (momentum 0), reverse stats calibrated on
    the same batch: inference-mode reconstruction = training-mode's, up to
    the unbiased variance's n/(n − 1) (n ≥ 2,048 here except at bn3)."""
    model = _model(momentum=0.0)
    x = np.tile(_data(8)[0], (64, 1, 1, 1)) + RNG.normal(0, 0.1, (512, 8, 8, 3)).astype("float32")
    model(x, training=True)  # forward moving statistics := this batch's
    assert model.calibrate_reverse_statistics(x, batch_size=512) == 1
    inference = model.reconstruct(x, batch_size=512)
    training = model.reconstruct(x, batch_size=512, training=True)
    scale = np.abs(training).max()
    assert np.abs(inference - training).max() < 1e-2 * scale


def test_calibration_averages_batches():
    model = _model()
    x, _ = _data(48)
    assert model.calibrate_reverse_statistics(x, batch_size=16) == 3
    means = []
    for i in range(3):
        model.calibrate_reverse_statistics(x[16 * i:16 * (i + 1)], batch_size=16)
        means.append(_values(model.reverse_statistics))
    model.calibrate_reverse_statistics(x, batch_size=16)
    for j, v in enumerate(model.reverse_statistics):
        np.testing.assert_allclose(v.numpy(), np.mean([m[j] for m in means], axis=0),
                                   rtol=1e-5, atol=1e-6)
    dataset = tf.data.Dataset.from_tensor_slices((x, np.zeros(48))).batch(16)
    assert model.calibrate_reverse_statistics(dataset) == 3
    with pytest.raises(ValueError, match="no batches"):
        model.calibrate_reverse_statistics(x[:0])


def test_inference_reconstruction_stays_finite_after_training():
    """The forward moving statistics on the reverse signal blew up (VGG-19 at
    3e19 after 8 RN steps); the reverse ones keep it at the training scale."""
    model = _model()
    x, y = _data(64)
    model.compile(keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=16, epochs=3, verbose=0)
    model.calibrate_reverse_statistics(x, batch_size=16)
    inference = model.reconstruct(x)
    training = model.reconstruct(x, training=True)
    assert np.all(np.isfinite(inference))
    assert np.abs(inference).max() < 10 * np.abs(training).max()


def test_saved_and_loaded(tmp_path):
    model = _model()
    model.calibrate_reverse_statistics(_data()[0])
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    for a, b in zip(model.reverse_statistics, loaded.reverse_statistics):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    x = _data(4)[0]
    np.testing.assert_allclose(model.reconstruct(x), loaded.reconstruct(x), rtol=1e-6, atol=1e-6)


def test_weights_saved_without_reverse_statistics_load_with_a_warning(tmp_path):
    model = _model()
    path = str(tmp_path / "plain.weights.h5")
    keras.Model(model.inputs, model.outputs).save_weights(path)
    fresh = kr.ReversibleModel.from_config(model.get_config())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fresh.load_weights(path)
    assert any("calibrate_reverse_statistics" in str(w.message) for w in caught)
    for a, b in zip(model.weights, fresh.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
