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
