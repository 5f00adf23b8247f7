"""DESIGN §1's worked example (racecar table 9), computed by hand."""

import keras
import numpy as np
import tensorflow as tf

import zoo


def test_reverse_activations_match_hand_computation():
    keras.utils.set_random_seed(0)
    model = zoo.racecar_mnist_cnn()
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.normal(scale=0.1, size=layer.bias.shape).astype("float32"))
    x = rng.uniform(size=(3, 28, 28, 1)).astype("float32")
    k1, b1 = model.get_layer("conv1").kernel, model.get_layer("conv1").bias
    k2, b2 = model.get_layer("conv2").kernel, model.get_layer("conv2").bias
    k3, b3 = model.get_layer("conv3").kernel, model.get_layer("conv3").bias

    def conv(v, k, b):
        return tf.nn.relu(tf.nn.conv2d(v, k, 1, "SAME") + b)

    def mp(v):
        return tf.nn.max_pool2d(v, 2, 2, "VALID")

    def up(v):
        return tf.repeat(tf.repeat(v, 2, axis=1), 2, axis=2)

    def deconv(v, k, b, shape):
        return tf.nn.conv2d_transpose(v - b, k, shape, 1, "SAME")

    l1 = x
    l2 = mp(conv(l1, k1, b1))
    l3 = mp(conv(l2, k2, b2))
    i_r = conv(l3, k3, b3)
    l3_rev = tf.nn.relu(deconv(i_r, k3, b3, l3.shape))
    l2_rev = tf.nn.relu(deconv(up(l3_rev), k2, b2, l2.shape))
    l1_rev = tf.nn.relu(deconv(up(l2_rev), k1, b1, l1.shape))

    pairs = model.reverse_activations(x)
    assert len(pairs) == 3
    for (got_l, got_rev), want_l, want_rev in zip(pairs, (l1, l2, l3), (l1_rev, l2_rev, l3_rev)):
        np.testing.assert_allclose(got_l, want_l, atol=1e-5)
        np.testing.assert_allclose(got_rev, want_rev, atol=1e-5)
    np.testing.assert_allclose(model.reconstruct(x), l1_rev, atol=1e-5)
    # The reverse signals are not trivial.
    assert float(tf.reduce_mean(tf.abs(l1_rev))) > 1e-4


def test_separate_pointwise_layers_are_applied_once():
    """Pointwise layers as their own layers (Dense → BN → LeakyReLU → Dense →
    LeakyReLU → Dense), by hand: each is re-applied once, at its constrained
    point, and is the identity in the walk (a second LeakyReLU would scale
    the negative part by 0.2² instead of 0.2)."""
    import keras_reversible as kr

    keras.utils.set_random_seed(1)
    L = keras.layers
    inputs = keras.Input((5,))
    h = L.Dense(6, name="d1")(inputs)
    h = L.BatchNormalization(name="bn")(h)
    h = L.LeakyReLU(0.2, name="a1")(h)
    h = L.Dense(4, name="d2")(h)
    h = L.LeakyReLU(0.2, name="a2")(h)
    outputs = L.Dense(3, name="d3")(h)
    model = kr.ReversibleModel(inputs, outputs)
    rng = np.random.default_rng(1)
    for v in model.weights:
        positive = "variance" in v.name
        value = rng.uniform(0.5, 2.0, v.shape) if positive else rng.normal(size=v.shape)
        v.assign(value.astype("float32"))
    x = rng.normal(size=(7, 5)).astype("float32")

    def w(name):
        layer = model.get_layer(name)
        return layer.kernel.numpy(), layer.bias.numpy()

    def lrelu(v):
        return np.where(v > 0, v, 0.2 * v)

    bn = model.get_layer("bn")
    mean, var = (v.numpy() for v in model.reverse_statistics)
    l3, l2 = [forward.numpy() for forward, _ in model.reverse_program.pairs(x)[2:0:-1]]
    y = model(x).numpy()
    (k3, b3), (k2, b2), (k1, b1) = w("d3"), w("d2"), w("d1")
    r3 = lrelu((y - b3) @ k3.T)
    r2 = (r3 - b2) @ k2.T
    r2 = lrelu((r2 - mean) / np.sqrt(var + bn.epsilon) * bn.gamma.numpy() + bn.beta.numpy())
    r1 = (r2 - b1) @ k1.T
    pairs = model.reverse_activations(x)
    assert np.all(np.isfinite(r1)) and 0.2 < np.mean(r3 < 0) < 0.8
    np.testing.assert_allclose(pairs[2][1], r3, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(pairs[1][1], r2, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(pairs[0][1], r1, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(pairs[2][0], l3, rtol=1e-5)
    np.testing.assert_allclose(pairs[1][0], l2, rtol=1e-5)
