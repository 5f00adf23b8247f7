"""Free spatial dimensions (``keras.Input((None, None, c))``): fully convolutional models (issue 18).

The rules take the shapes they need from the forward taps at run time, so
one model reverses inputs of any size.
"""

import keras
import numpy as np
import pytest

import keras_reversible as kr
import zoo

L = keras.layers


def _linear_model():
    """No activation, bias or max-pool: the reverse pass is exactly Aᵀ."""
    inputs = keras.Input((None, None, 2), name="image")
    h = L.Conv2D(3, 3, padding="same", use_bias=False, name="conv1")(inputs)
    h = L.AveragePooling2D(2, name="avg")(h)
    h = L.Conv2D(4, 3, strides=2, padding="same", use_bias=False, name="conv2")(h)
    h = L.GlobalAveragePooling2D(name="gap")(h)
    return kr.ReversibleModel(inputs, L.Dense(3, use_bias=False, name="fc")(h))


@pytest.mark.parametrize("size", [(8, 8), (11, 7)])
def test_adjoint_identity_at_two_sizes_with_one_model(size):
    # Before: "Expected int32, but got None" (the conv rule read the static shape).
    model = _linear_model()
    rng = np.random.default_rng(0)
    x1, x2 = (rng.normal(size=(2, *size, 2)).astype("float32") for _ in range(2))
    # reconstruct(x) = AᵀA x, so <A x1, A x2> = <x1, Aᵀ A x2>.
    lhs = np.sum(np.asarray(model(x1), np.float64) * np.asarray(model(x2), np.float64))
    regen = model.reconstruct(x2)
    assert regen.shape == x2.shape
    rhs = np.sum(x1.astype(np.float64) * regen)
    assert rhs == pytest.approx(lhs, rel=1e-4, abs=1e-5)


def test_fit_and_reconstruct_at_two_sizes():
    inputs = keras.Input((None, None, 1), name="image")
    h = L.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(inputs)
    h = L.MaxPooling2D(name="pool")(h)
    h = L.Conv2D(4, 3, strides=2, padding="same", activation="relu", name="conv2")(h)
    outputs = L.Dense(3, name="fc")(L.GlobalAveragePooling2D(name="gap")(h))
    model = kr.ReversibleModel(inputs, outputs, input_range="relu")
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    for size in (8, 11):  # 11: odd sizes, the up-sampling of the max-pool is cropped/padded
        x = rng.random((4, size, size, 1)).astype("float32")
        history = model.fit(x, np.arange(4) % 3, epochs=1, verbose=0)
        assert np.isfinite(history.history["racecar_loss"][0])
        regen = model.reconstruct(x)
        assert regen.shape == x.shape and np.isfinite(regen).all()
        assert [p[1].shape for p in model.reverse_activations(x)] == [
            x.shape, (4, size // 2, size // 2, 4), (4, 4)]


def test_smoke_generator_with_free_spatial_dimensions():
    model = zoo.smoke_generator(input_shape=(None, None, 1), width=0.05)
    model.compile("adam", "mse")
    rng = np.random.default_rng(0)
    for size in (8, 12):
        x = rng.random((2, size, size, 1)).astype("float32")
        assert model(x).shape == (2, 4 * size, 4 * size, 1)
        model.fit(x, rng.random((2, 4 * size, 4 * size, 1)), epochs=1, verbose=0)
        assert model.reconstruct(x).shape == x.shape
