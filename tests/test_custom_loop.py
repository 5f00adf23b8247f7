"""Pieces for custom training loops and CPU-sized zoo models (used by the §5.3/§5.4 examples)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo


def test_call_with_racecar_loss_matches_the_reverse_pass():
    model = zoo.smoke_generator(input_shape=(4, 4, 1), width=0.125, racecar_weight=0.1)
    x = np.random.default_rng(0).random((3, 4, 4, 1), dtype=np.float32)
    with tf.GradientTape() as tape:
        y, loss = model.call_with_racecar_loss(x)
    expected = sum(0.1 * 0.5 * np.sum((f - r) ** 2)
                   for f, r in model.reverse_activations(x, depth=6))
    np.testing.assert_allclose(float(loss), expected, rtol=1e-4)
    np.testing.assert_allclose(y, model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    grads = tape.gradient(loss, model.trainable_weights)
    kernels = [g for g, v in zip(grads, model.trainable_weights) if "kernel" in v.path]
    assert len(kernels) == 6 and all(float(tf.reduce_sum(tf.abs(g))) > 0 for g in kernels)


def test_call_with_racecar_loss_is_zero_without_reverse_pass():
    model = zoo.smoke_generator(input_shape=(4, 4, 1), width=0.125, depth=0)
    _, loss = model.call_with_racecar_loss(np.ones((2, 4, 4, 1), np.float32), training=True)
    assert float(loss) == 0.0


def test_width_scales_filters_and_keeps_the_layout():
    g = zoo.smoke_generator(width=0.25)
    assert [g.get_layer(f"conv{i}").filters for i in range(1, 7)] == [16, 32, 32, 16, 8, 1]
    assert g.output.shape == (None, 64, 64, 1) and g.depth == 6
    d = zoo.smoke_discriminator(input_shape=(16, 16, 2), width=0.5)
    assert [d.get_layer(f"conv{i}").filters for i in range(1, 5)] == [16, 32, 64, 128]
    v = zoo.reversible_vgg19(num_classes=10, input_shape=(32, 32, 3), width=0.25)
    assert v.get_layer("block1_conv1").filters == 16 and v.get_layer("block5_conv4").filters == 128
    assert v.depth == 16
    c = zoo.racecar_cifar_vgg(num_classes=5, width=0.125)
    assert [c.get_layer(f"conv{i}").filters for i in (1, 3, 5, 8, 13)] == [8, 16, 32, 64, 64]
    assert c.get_layer("fc14").units == 512 and c.depth == 13
    # By hand: convs 230,568 + their BN 2,112; I_r 2·2·64 = 256 → fc14 131,584 + BN 2,048,
    # fc15 262,656 + BN 2,048, fc16 512·5 + 5 = 2,565.
    assert keras.Model(c.inputs, c.outputs).count_params() == 633_581
    for build in (lambda: zoo.smoke_generator(width=0),
                  lambda: zoo.racecar_cifar_vgg(width=0),
                  lambda: zoo.smoke_discriminator(width=-1),
                  lambda: zoo.reversible_vgg19(input_shape=(32, 32, 3), width=0)):
        with pytest.raises(ValueError, match="width"):
            build()
