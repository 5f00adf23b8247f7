"""Dot-product identity ⟨A x, y⟩ = ⟨x, Aᵀ y⟩ for every linear reverse rule."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_reversible as kr
from keras_reversible import rules

L = keras.layers
RNG = np.random.default_rng(0)


def _apply_rule(layer, input_shapes, y, inputs=None, **options):
    ctx = rules.ReverseContext(
        [(None, *s) for s in input_shapes], inputs=inputs, options=options
    )
    return rules.rule_for(layer).fn(layer, y, ctx)


def _dot(a, b):
    return float(tf.reduce_sum(tf.cast(a, tf.float64) * tf.cast(b, tf.float64)))


def _check_dot_identity(layer, input_shapes, batch=2, **options):
    """A x = f(x) − f(0) for an affine layer, and Aᵀ y = rule(y + f(0))."""
    xs = [tf.constant(RNG.normal(size=(batch, *s)), tf.float32) for s in input_shapes]
    zeros = [tf.zeros_like(x) for x in xs]
    single = len(xs) == 1
    f = (lambda v: layer(v[0])) if single else (lambda v: layer(v))
    f0 = f(zeros)
    ax = f(xs) - f0
    y = tf.constant(RNG.normal(size=ax.shape), tf.float32)
    aty = _apply_rule(layer, input_shapes, y + f0, **options)
    aty = [aty] if single else list(aty)
    lhs = _dot(ax, y)
    rhs = sum(_dot(x, a) for x, a in zip(xs, aty))
    for x, a in zip(xs, aty):
        assert tuple(a.shape) == tuple(x.shape)
    assert rhs == pytest.approx(lhs, rel=1e-4, abs=1e-3), (lhs, rhs)


def _bias():
    return keras.initializers.RandomNormal(stddev=1.0, seed=1)


CONV2D = [
    dict(strides=s, padding=p, dilation_rate=1) for s in (1, 2) for p in ("same", "valid")
] + [dict(strides=1, padding=p, dilation_rate=2) for p in ("same", "valid")]


@pytest.mark.parametrize("size", [7, 8])
@pytest.mark.parametrize("cfg", CONV2D, ids=lambda c: f"s{c['strides']}-{c['padding']}-d{c['dilation_rate']}")
def test_conv2d(size, cfg):
    layer = L.Conv2D(5, 3, bias_initializer=_bias(), **cfg)
    _check_dot_identity(layer, [(size, size + 1, 3)])


@pytest.mark.parametrize("cfg", CONV2D[:4] + [dict(strides=1, padding="causal", dilation_rate=2)],
                         ids=lambda c: f"s{c['strides']}-{c['padding']}-d{c['dilation_rate']}")
def test_conv1d(cfg):
    _check_dot_identity(L.Conv1D(4, 3, bias_initializer=_bias(), **cfg), [(9, 3)])


@pytest.mark.parametrize("strides,padding", [(1, "same"), (2, "valid"), (2, "same")])
def test_conv3d(strides, padding):
    layer = L.Conv3D(2, 3, strides=strides, padding=padding, bias_initializer=_bias())
    _check_dot_identity(layer, [(5, 6, 7, 2)])


def test_conv2d_groups():
    _check_dot_identity(L.Conv2D(4, 3, groups=2, bias_initializer=_bias()), [(6, 6, 4)])


@pytest.mark.parametrize("strides,padding,output_padding",
                         [(1, "same", None), (2, "same", None), (2, "valid", None), (2, "valid", 1)])
def test_conv2d_transpose(strides, padding, output_padding):
    layer = L.Conv2DTranspose(3, 3, strides=strides, padding=padding,
                              output_padding=output_padding, bias_initializer=_bias())
    _check_dot_identity(layer, [(5, 6, 2)])


def test_conv1d_transpose():
    _check_dot_identity(L.Conv1DTranspose(3, 3, strides=2, bias_initializer=_bias()), [(7, 2)])


@pytest.mark.parametrize("strides,padding", [(1, "same"), (2, "same"), (2, "valid")])
def test_depthwise_conv2d(strides, padding):
    layer = L.DepthwiseConv2D(3, strides=strides, padding=padding, depth_multiplier=2,
                              bias_initializer=_bias())
    _check_dot_identity(layer, [(7, 8, 3)])


def test_depthwise_conv1d():
    _check_dot_identity(L.DepthwiseConv1D(3, bias_initializer=_bias()), [(9, 3)])


@pytest.mark.parametrize("strides,padding", [(1, "same"), (2, "valid")])
def test_separable_conv2d(strides, padding):
    layer = L.SeparableConv2D(4, 3, strides=strides, padding=padding, bias_initializer=_bias())
    _check_dot_identity(layer, [(7, 7, 3)])


def test_separable_conv1d():
    _check_dot_identity(L.SeparableConv1D(4, 3, bias_initializer=_bias()), [(9, 3)])


@pytest.mark.parametrize("shape", [(6,), (3, 6)])
def test_dense(shape):
    _check_dot_identity(L.Dense(4, bias_initializer=_bias()), [shape])


STRUCTURAL = [
    (L.AveragePooling2D(2), [(8, 7, 3)]),
    (L.AveragePooling2D(3, strides=2, padding="same"), [(7, 8, 3)]),
    (L.AveragePooling1D(2, padding="same"), [(7, 3)]),
    (L.AveragePooling3D(2), [(4, 4, 5, 2)]),
    (L.GlobalAveragePooling2D(), [(5, 6, 3)]),
    (L.GlobalAveragePooling2D(keepdims=True), [(5, 6, 3)]),
    (L.GlobalAveragePooling1D(), [(5, 3)]),
    (L.ZeroPadding2D(((1, 2), (0, 3))), [(4, 5, 2)]),
    (L.ZeroPadding1D(2), [(4, 2)]),
    (L.ZeroPadding3D(1), [(3, 3, 3, 1)]),
    (L.Cropping2D(((1, 0), (2, 1))), [(6, 7, 2)]),
    (L.Cropping1D((1, 2)), [(6, 2)]),
    (L.Cropping3D(1), [(4, 4, 4, 1)]),
    (L.Flatten(), [(3, 4, 2)]),
    (L.Reshape((6, 4)), [(3, 4, 2)]),
    (L.Permute((2, 1, 3)), [(3, 4, 2)]),
    (L.Add(), [(4, 3), (4, 3)]),
    (L.Add(), [(4, 3), (4, 3), (4, 3)]),
    (L.Subtract(), [(4, 3), (4, 3)]),
    (L.Average(), [(4, 3), (4, 3)]),
    (L.Concatenate(), [(4, 3), (4, 5)]),
    (L.Concatenate(axis=1), [(2, 3), (4, 3)]),
]


@pytest.mark.parametrize("layer,shapes", STRUCTURAL, ids=lambda v: getattr(v, "name", ""))
def test_structural(layer, shapes):
    _check_dot_identity(layer, shapes)


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_upsampling_exact_transpose_option(interpolation):
    layer = L.UpSampling2D(2, interpolation=interpolation)
    _check_dot_identity(layer, [(3, 4, 2)], upsample_reverse="transpose")


@pytest.mark.parametrize("layer,shape", [
    (L.MaxPooling2D(2), (6, 7, 3)),
    (L.MaxPooling2D(3, strides=2, padding="same"), (7, 7, 2)),
    (L.GlobalMaxPooling2D(), (4, 5, 3)),
])
def test_max_pooling_unpool_is_exact_transpose_at_x(layer, shape):
    # Max pooling is positively homogeneous, MP(x) = J(x) x: the unpool rule,
    # J(x)ᵀ y, satisfies the identity at the forward input x.
    x = tf.constant(RNG.normal(size=(2, *shape)), tf.float32)
    out = layer(x)
    y = tf.constant(RNG.normal(size=out.shape), tf.float32)
    back = _apply_rule(layer, [shape], y, inputs=[x], max_pool_reverse="unpool")
    assert _dot(out, y) == pytest.approx(_dot(x, back), rel=1e-5)
    # Each output value lands on exactly one input position.
    assert int(tf.math.count_nonzero(back)) <= int(tf.size(y))


def test_max_pooling_default_is_nearest_upsampling():
    layer = L.MaxPooling2D(2)
    y = tf.reshape(tf.range(8, dtype=tf.float32), (1, 2, 2, 2))
    back = _apply_rule(layer, [(5, 4, 2)], y)  # odd height: zero row appended
    assert back.shape == (1, 5, 4, 2)
    np.testing.assert_array_equal(back[0, :4, :, 0], np.repeat(np.repeat(y[0, :, :, 0], 2, 0), 2, 1))
    np.testing.assert_array_equal(back[0, 4], 0)


def test_upsampling_default_is_max_pooling():
    layer = L.UpSampling2D(2)
    y = tf.constant(RNG.normal(size=(1, 4, 6, 2)), tf.float32)
    back = _apply_rule(layer, [(2, 3, 2)], y)
    np.testing.assert_allclose(back, tf.nn.max_pool2d(y, 2, 2, "VALID"))


def test_rescaling_and_normalization_are_inverted():
    x = tf.constant(RNG.uniform(size=(3, 4)), tf.float32)
    rescale = L.Rescaling(2.0, offset=-1.0)
    np.testing.assert_allclose(_apply_rule(rescale, [(4,)], rescale(x)), x, atol=1e-6)
    norm = L.Normalization(mean=[1.0, 2.0, 3.0, 4.0], variance=[4.0, 1.0, 9.0, 0.25])
    np.testing.assert_allclose(_apply_rule(norm, [(4,)], norm(x)), x, atol=1e-5)


@pytest.mark.parametrize("invert", [False, True])
def test_normalization_inverse_with_zero_and_tiny_variance(invert):
    # Keras divides by max(sqrt(variance), epsilon): a zero-variance feature is
    # scaled by 1/epsilon, and the inverse must scale it back by epsilon.
    norm = L.Normalization(invert=invert)
    norm.adapt(np.array([[0.0, 1.0], [0.0, 3.0]], np.float32))
    x = tf.constant([[0.5, 2.5], [-1.0, 0.0]], tf.float32)
    np.testing.assert_allclose(_apply_rule(norm, [(2,)], norm(x)), x, rtol=1e-5, atol=1e-6)
    # Inverted, x·epsilon is added to the mean: a nonzero mean would round it away in float32.
    mean = 0.0 if invert else 0.25
    for variance in (0.0, 1e-20, 1e-12, 1e-6):
        tiny = L.Normalization(mean=[mean], variance=[variance], invert=invert)
        x = tf.constant([[0.5], [0.3]], tf.float32)
        np.testing.assert_allclose(_apply_rule(tiny, [(1,)], tiny(x)), x, rtol=1e-5, atol=1e-7)


def _linear_model(build):
    inputs = keras.Input((6, 6, 2))
    outputs = build(inputs)
    return kr.ReversibleModel(inputs, outputs)


@pytest.mark.parametrize("name,build", [
    ("fan-out+add", lambda x: L.Add()([L.Conv2D(3, 3, padding="same")(x),
                                        L.Conv2D(3, 1)(x)])),
    ("residual", lambda x: (lambda h: L.Add()([h, L.Conv2D(2, 3, padding="same")(
        L.Conv2D(2, 3, padding="same")(h))]))(L.Conv2D(2, 1)(x))),
    ("dense-block", lambda x: (lambda h: L.Concatenate()([h, L.Conv2D(3, 3, padding="same")(h)]))(
        L.Conv2D(2, 3, padding="same")(x))),
    ("shared-tensor", lambda x: L.Concatenate()([L.Dense(3)(L.Flatten()(x)), L.Dense(2)(L.Flatten()(x))])),
    ("avgpool+flatten+dense", lambda x: L.Dense(5)(L.Flatten()(L.AveragePooling2D(2)(
        L.Conv2D(4, 3, strides=2, padding="same")(x))))),
])
def test_whole_graph_reverse_is_the_transpose(name, build):
    """With no range ops and zero biases, the reverse pass is exactly Aᵀ."""
    model = _linear_model(build)
    for layer in model.layers:
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(tf.zeros_like(layer.bias))
    x = tf.constant(RNG.normal(size=(2, 6, 6, 2)), tf.float32)
    ax = model(x)
    y = tf.constant(RNG.normal(size=ax.shape), tf.float32)
    graph = model.reverse_program.graph
    back = graph.run(y, {}, training=False)[graph.input_keys[0]]
    assert _dot(ax, y) == pytest.approx(_dot(x, back), rel=1e-4)


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
    assert rules.rule_for(model.layers[1]).kind == "weight"  # found through the MRO
    x = tf.constant(RNG.normal(size=(2, 5, 5, 1)), tf.float32)
    y = tf.constant(RNG.normal(size=(2, 5, 5, 2)), tf.float32)
    graph = model.reverse_program.graph
    back = graph.run(y, {}, training=False)[graph.input_keys[0]]
    assert _dot(model(x), y) == pytest.approx(_dot(x, back), rel=1e-4)


def test_register_rejects_bad_arguments():
    with pytest.raises(TypeError, match="keras.layers.Layer subclass"):
        kr.register_reverse_rule(int)
    with pytest.raises(ValueError, match="kind must be one of"):
        kr.register_reverse_rule(L.Layer, kind="linear")
