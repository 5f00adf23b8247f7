"""The CIFAR ResNets of He et al. (zoo.reversible_cifar_resnet): counts, shortcuts, reverse, fit."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_reversible as kr
import zoo
from keras_reversible import registry
from reversible_harness import run_reversible_model_test
from zoo import cifar_resnet

L = keras.layers
RNG = np.random.default_rng(0)


def expected_parameters(depth, shortcut, num_classes=10):
    """(trainable, count_params) of the CIFAR ResNet by formula (He et al. §4.2).

    Convolutions 3×3 without bias, each followed by a BN with γ, β
    (trainable) and moving mean, variance (not trainable):
    stem C(3, 3→16); per stage of ``n`` blocks with ``f`` filters, the first
    block's first conv takes ``f_in`` channels and the other ``2n − 1`` take
    ``f``; option B adds a 1×1 projection with its BN at stages 2 and 3;
    head FC(64 → classes) with bias.
    """
    n = (depth - 2) // 6
    convs = [(3, 3, 16)]  # (kernel, c_in, c_out)
    f_in = 16
    for f in (16, 32, 64):
        convs.append((3, f_in, f))
        convs += [(3, f, f)] * (2 * n - 1)
        if shortcut == "B" and f_in != f:
            convs.append((1, f_in, f))
        f_in = f
    weights = sum(k * k * c_in * c_out for k, c_in, c_out in convs)
    bn = sum(c_out for _, _, c_out in convs)
    head = 64 * num_classes + num_classes
    trainable = weights + 2 * bn + head
    return trainable, trainable + 2 * bn


@pytest.mark.parametrize("depth", cifar_resnet.DEPTHS)
@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_parameter_counts_match_the_formula(depth, shortcut):
    model = zoo.reversible_cifar_resnet(depth=depth, shortcut=shortcut)
    trainable, total = expected_parameters(depth, shortcut)
    assert sum(int(np.prod(v.shape)) for v in model.trainable_weights) == trainable
    assert keras.Model(model.inputs, model.outputs).count_params() == total
    # 6n + 1 convolutions (+ 2 projections in B) and the classifier.
    convs = [layer for layer in model.layers if isinstance(layer, L.Conv2D)]
    assert len(convs) == depth - 1 + (2 if shortcut == "B" else 0)
    assert model.num_constrained == depth  # distinct conv inputs + the classifier's


def test_parameter_counts_are_he_et_al_table6():
    # He et al. table 6: ResNet-20 0.27 M, -32 0.46 M, -44 0.66 M, -56 0.85 M, -110 1.7 M.
    assert expected_parameters(20, "A") == (269_722, 271_098)
    assert expected_parameters(110, "A") == (1_727_962, 1_736_058)
    for depth, paper in ((20, 0.27e6), (32, 0.46e6), (44, 0.66e6), (56, 0.85e6), (110, 1.7e6)):
        trainable, _ = expected_parameters(depth, "A")
        assert abs(trainable - paper) / paper < 0.02, (depth, trainable)
    entry = zoo.info("reversible_cifar_resnet")
    assert expected_parameters(20, "A") == (entry.trainable_parameters, entry.parameters)
    assert "ResNet 1.7M" in zoo.info("reversible_cifar_resnet").table
    assert "reversible_cifar_resnet(depth=110)" in zoo.info("reversible_resnet18").table


def test_layout_strides_and_shapes():
    model = zoo.reversible_cifar_resnet(depth=32)
    assert model.get_layer("stage1_block5_out").output.shape[1:] == (32, 32, 16)
    assert model.get_layer("stage2_block1_1_conv").strides == (2, 2)
    assert model.get_layer("stage2_block1_out").output.shape[1:] == (16, 16, 32)
    assert model.get_layer("stage3_block1_1_conv").strides == (2, 2)
    assert model.get_layer("avg_pool").input.shape[1:] == (8, 8, 64)
    assert model.output.shape == (None, 10)
    b = zoo.reversible_cifar_resnet(depth=20, shortcut="B", num_classes=100)
    assert b.get_layer("stage3_block1_proj_conv").kernel.shape == (1, 1, 32, 64)
    assert b.output.shape == (None, 100)


def _shortcut_model(c_in=4, c_out=8, size=6, kernel=None):
    """input → option-A shortcut → C(1×1, no bias): a linear map with exact transpose."""
    inputs = keras.Input((size, size, c_in))
    x = cifar_resnet._shortcut_a(inputs, c_out, 2, "sc")
    conv = L.Conv2D(c_out, 1, use_bias=False, name="conv")
    outputs = conv(x)
    model = kr.ReversibleModel(inputs, outputs, depth=1)
    if kernel is not None:
        conv.kernel.assign(kernel)
    return model


def test_option_a_shortcut_forward_is_subsampling_and_zero_channels():
    model = _shortcut_model(kernel=np.eye(8, dtype="float32").reshape(1, 1, 8, 8))
    x = RNG.normal(size=(2, 6, 6, 4)).astype("float32")
    out = model.predict(x, verbose=0)
    np.testing.assert_allclose(out[..., :4], x[:, ::2, ::2, :], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(out[..., 4:], 0.0)
    assert not any(layer.weights for layer in model.layers if layer.name.startswith("sc_"))


def test_option_a_shortcut_reverse_is_its_exact_transpose():
    # With the identity 1×1 conv, reconstruct(x) = Sᵀ S x: x kept at the
    # even positions, zeros at the dropped ones (the padded channels cropped).
    model = _shortcut_model(kernel=np.eye(8, dtype="float32").reshape(1, 1, 8, 8))
    x = RNG.normal(size=(2, 6, 6, 4)).astype("float32")
    expected = np.zeros_like(x)
    expected[:, ::2, ::2, :] = x[:, ::2, ::2, :]
    np.testing.assert_allclose(model.reconstruct(x), expected, rtol=1e-6, atol=1e-6)


def test_option_a_shortcut_dot_product_identity():
    """⟨S x, y⟩ = ⟨x, Sᵀ y⟩ with Sᵀ the composition of the layers' own rules."""
    model = _shortcut_model()
    shortcut_layers = [layer for layer in model.layers if layer.name.startswith("sc_")]
    assert [type(layer).__name__ for layer in shortcut_layers] == [
        "AveragePooling2D", "Reshape", "ZeroPadding3D", "Reshape"]
    x = tf.constant(RNG.normal(size=(3, 6, 6, 4)), tf.float32)
    sx = x
    shapes = []
    for layer in shortcut_layers:
        shapes.append(tuple(sx.shape))
        sx = layer(sx)
    y = tf.constant(RNG.normal(size=sx.shape), tf.float32)
    back = y
    for layer, shape in zip(reversed(shortcut_layers), reversed(shapes)):
        ctx = registry.ReverseContext([(None, *shape[1:])])
        back = registry.rule_for(layer).transpose(layer, back, ctx)
    assert back.shape == x.shape
    lhs = float(tf.reduce_sum(tf.cast(sx, tf.float64) * tf.cast(y, tf.float64)))
    rhs = float(tf.reduce_sum(tf.cast(x, tf.float64) * tf.cast(back, tf.float64)))
    assert rhs == pytest.approx(lhs, rel=1e-5)
    # And the whole model, through the public API: ⟨M x, M x⟩ = ⟨x, Mᵀ M x⟩.
    mx = model.predict(x, verbose=0).astype("float64")
    mtmx = model.reconstruct(x.numpy()).astype("float64")
    assert float(np.sum(x.numpy() * mtmx)) == pytest.approx(float(np.sum(mx * mx)), rel=1e-5)


def test_option_b_passes_the_shared_harness():
    """Option B at 32×32 (the zoo sweep runs the default, option A, at its test input)."""
    entry = zoo.info("reversible_cifar_resnet")
    run_reversible_model_test(
        lambda: zoo.reversible_cifar_resnet(depth=20, shortcut="B"), entry.input_shape,
        entry.task_loss, expected_settings=entry.reversal_defaults(), num_constrained=20,
        gradient_exceptions=entry.gradient_exceptions)


@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_reconstruct_and_one_fit_step(shortcut):
    model = zoo.reversible_cifar_resnet(depth=20, shortcut=shortcut)
    assert model.depth == 1 and model.reversal_settings["reduction"] == "mean"
    x = RNG.uniform(size=(4, 32, 32, 3)).astype("float32")
    y = np.arange(4, dtype="int32")
    x_bar = model.reconstruct(x)
    assert x_bar.shape == x.shape and np.all(np.isfinite(x_bar))
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy())
    before = [v.numpy().copy() for v in model.trainable_weights]
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0).history
    assert history["racecar_loss"][0] > 0 and np.isfinite(history["loss"][0])
    assert np.isclose(history["loss"][0], history["task_loss"][0] + history["racecar_loss"][0],
                      rtol=1e-5)
    moved = [not np.array_equal(b, v.numpy()) for b, v in zip(before, model.trainable_weights)]
    assert all(moved)


def test_reverse_depth_zero_is_the_standard_network():
    model = zoo.reversible_cifar_resnet(depth=20, reverse_depth=0)
    assert model.depth == 0
    model.compile(keras.optimizers.SGD(0.01), keras.losses.SparseCategoricalCrossentropy())
    x = RNG.uniform(size=(2, 32, 32, 3)).astype("float32")
    history = model.fit(x, np.array([0, 1]), batch_size=2, epochs=1, verbose=0).history
    assert history["racecar_loss"][0] == 0.0
    assert zoo.get("reversible_cifar_resnet", depth=20, reverse_depth=None).depth == 20


def test_weights_round_trip(tmp_path):
    model = zoo.reversible_cifar_resnet(depth=20)
    path = str(tmp_path / "r20.weights.h5")
    model.save_weights(path)
    loaded = zoo.reversible_cifar_resnet(depth=20, weights=path)
    x = RNG.uniform(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("kwargs,match", [
    (dict(depth=18), "depth must be one of"),
    (dict(depth=True), "depth must be one of"),
    (dict(depth="20"), "depth must be one of"),
    (dict(shortcut="C"), "shortcut must be 'A' or 'B'"),
    (dict(shortcut="a"), "shortcut must be 'A' or 'B'"),
    (dict(weights="cifar10_unknown"), r"weights='cifar10_unknown'\): unknown weights; known "
                                      r"presets of reversible_cifar_resnet"),
    (dict(weights="/nonexistent/x.weights.h5"), r"no such \.weights\.h5 file; weights must be "
                                                r"None, a preset"),
])
def test_bad_arguments_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        zoo.reversible_cifar_resnet(**kwargs)
