"""Pooling and up-sampling (kind "structural").

Average pooling is linear: its exact transpose (spread evenly / broadcast).
Max pooling and up-sampling follow the papers by default, where the exact
transpose differs (DESIGN §1): MaxPooling → nearest up-sampling by the
strides (the papers' UP), UpSampling → max pooling (racecar table 13). The
reversal options offer the exact transposes: ``max_pool_reverse="unpool"``
(to the forward arg-max positions) and ``upsample_reverse="transpose"``.
"""

import keras
import tensorflow as tf

from keras_reversible import registry
from keras_reversible.rules._common import check_channels_last

L = keras.layers

registry.transpose_rule(
    L.AveragePooling1D, L.AveragePooling2D, L.AveragePooling3D,
    L.GlobalAveragePooling1D, L.GlobalAveragePooling2D, L.GlobalAveragePooling3D,
)(registry.transpose_of_call)


def _fit_spatial(x, shape, dynamic=None):
    """Crop or zero-pad the spatial axes of ``x`` to ``shape``.

    ``shape`` is static; its free dimensions are taken from the int32 tensor
    ``dynamic`` (the full shape, e.g. ``ReverseContext.input_shape``).
    """
    rank = len(shape)
    for axis in range(1, rank - 1):
        want = shape[axis]
        have = x.shape[axis]
        if want is None or have is None:
            want = dynamic[axis] if want is None else want
            have = tf.shape(x)[axis]
            x = tf.gather(x, tf.range(tf.minimum(want, have)), axis=axis)
            pad = [[0, 0]] * rank
            pad[axis] = [0, tf.maximum(want - have, 0)]
            x = tf.pad(x, pad)
        elif have > want:
            x = tf.gather(x, tf.range(want), axis=axis)
        elif have < want:
            pad = [[0, 0]] * rank
            pad[axis] = [0, want - have]
            x = tf.pad(x, pad)
    return x


def _nearest_up(y, factors, ctx):
    for axis, factor in enumerate(factors, start=1):
        if factor > 1:
            y = tf.repeat(y, factor, axis=axis)
    shape = ctx.input_shapes[0]
    dynamic = ctx.input_shape(0, y) if any(d is None for d in shape[1:]) else None
    return _fit_spatial(y, shape, dynamic)


def _unpools(options):
    return registry.option(options, "max_pool_reverse") == "unpool"


@registry.transpose_rule(L.MaxPooling1D, L.MaxPooling2D, L.MaxPooling3D,
                         needs_inputs=_unpools)
def _max_pooling(layer, y, ctx):
    """Paper: nearest up-sampling (UP); option ``"unpool"``: exact transpose."""
    check_channels_last(layer)
    if _unpools(ctx.options):
        return registry.vjp(layer.call, [ctx.forward_input(0, y)], y)[0]
    return _nearest_up(y, layer.strides, ctx)


@registry.transpose_rule(L.GlobalMaxPooling1D, L.GlobalMaxPooling2D, L.GlobalMaxPooling3D,
                         needs_inputs=_unpools)
def _global_max_pooling(layer, y, ctx):
    """Paper-style UP: broadcast to every position; ``"unpool"``: arg-max."""
    check_channels_last(layer)
    if _unpools(ctx.options):
        return registry.vjp(layer.call, [ctx.forward_input(0, y)], y)[0]
    shape = ctx.input_shapes[0]
    if not layer.keepdims:
        for _ in shape[1:-1]:
            y = tf.expand_dims(y, 1)
    return tf.broadcast_to(y, ctx.input_shape(0, y))


@registry.transpose_rule(L.UpSampling1D, L.UpSampling2D, L.UpSampling3D)
def _up_sampling(layer, y, ctx):
    """Paper (racecar table 13): max pooling; option ``"transpose"``: exact."""
    check_channels_last(layer)
    if ctx.option("upsample_reverse") == "transpose":
        return registry.transpose_of_call(layer, y, ctx)
    size = layer.size if isinstance(layer.size, (tuple, list)) else (layer.size,)
    return tf.nn.max_pool(y, ksize=list(size), strides=list(size), padding="VALID")
