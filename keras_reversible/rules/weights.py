"""Weight layers: the transpose of the linear part, after ``− b`` (kind "weight").

Dense ``y = W x + b`` reverses to ``Wᵀ(y − b)`` (racecar's form; the RN paper
writes ``γ(o·Wᵀ + b_{t−1})``, adding the previous layer's bias instead);
Conv to ``conv_transpose(y − b, k)`` back to the input shape; the other
convolutions to the VJP of their linear part, which is its exact transpose.
"""

import keras
import tensorflow as tf

from keras_reversible import registry
from keras_reversible.rules._common import check_channels_last, like, minus_bias

L = keras.layers


@registry.transpose_rule(L.Dense, kind="weight")
def _dense(layer, y, ctx):
    kernel = like(layer.kernel, y)
    return tf.tensordot(minus_bias(layer, y), kernel, axes=[[y.shape.rank - 1], [1]])


def _conv_linear(layer, x):
    """The linear part of a Conv layer, causal padding included."""
    padding = layer.padding
    if padding == "causal":
        x = keras.ops.pad(x, layer._compute_causal_padding())
        padding = "valid"
    return keras.ops.conv(
        x, like(layer.kernel, x), strides=list(layer.strides), padding=padding,
        dilation_rate=layer.dilation_rate, data_format=layer.data_format,
    )


def _is_depthwise(layer, ctx):
    """A 2-D convolution with one group per input channel (ConvNeXt's 7×7 conv)."""
    channels = ctx.input_shapes[0][-1]
    return (isinstance(layer, L.Conv2D) and layer.groups > 1 and layer.groups == channels
            and layer.padding != "causal")


def _depthwise_transpose(layer, y, ctx):
    """The transpose of a grouped Conv2D with a group per channel, as a depthwise conv's.

    TensorFlow's gradient of a grouped convolution is slow on CPU; the depthwise
    kernel ``(h, w, channels, filters / channels)`` orders the outputs alike.
    """
    h, w, _, filters = layer.kernel.shape
    channels = ctx.input_shapes[0][-1]
    kernel = tf.reshape(like(layer.kernel, y), [h, w, channels, filters // channels])
    return tf.nn.depthwise_conv2d_backprop_input(
        ctx.input_shape(0, y), kernel, y, strides=[1, *layer.strides, 1],
        padding=layer.padding.upper())


@registry.transpose_rule(L.Conv1D, L.Conv2D, L.Conv3D, kind="weight")
def _conv(layer, y, ctx):
    check_channels_last(layer)
    y = minus_bias(layer, y)
    # TensorFlow's CPU Conv2DBackpropInput rejects dilation > 1 unless oneDNN is on
    # (not on every CPU; TF_ENABLE_ONEDNN_OPTS=0 shows it); the VJP uses space-to-batch.
    dilated = max(layer.dilation_rate) > 1
    if _is_depthwise(layer, ctx) and not dilated:
        return _depthwise_transpose(layer, y, ctx)
    if layer.groups != 1 or layer.padding == "causal" or dilated:
        primal = ctx.zeros_like_input(0, y)
        return registry.vjp(lambda x: _conv_linear(layer, x), [primal], y)[0]
    return tf.nn.conv_transpose(
        y,
        like(layer.kernel, y),
        ctx.input_shape(0, y),
        strides=list(layer.strides),
        padding=layer.padding.upper(),
    )


def _transpose_of_linear_part(linear_part):
    """A weight rule: the VJP of the layer's linear part, after − bias."""

    def transpose(layer, y, ctx):
        check_channels_last(layer)
        y = minus_bias(layer, y)
        primal = ctx.zeros_like_input(0, y)
        return registry.vjp(lambda x: linear_part(layer, x), [primal], y)[0]

    transpose.__qualname__ = f"transpose_of({linear_part.__name__})"
    return transpose


def _depthwise_linear(layer, x):
    return keras.ops.depthwise_conv(
        x, like(layer.kernel, x), strides=layer.strides, padding=layer.padding,
        data_format=layer.data_format, dilation_rate=layer.dilation_rate,
    )


def _separable_linear(layer, x):
    return keras.ops.separable_conv(
        x, like(layer.depthwise_kernel, x), like(layer.pointwise_kernel, x),
        strides=layer.strides, padding=layer.padding,
        data_format=layer.data_format, dilation_rate=layer.dilation_rate,
    )


def _conv_transpose_linear(layer, x):
    return keras.ops.conv_transpose(
        x, like(layer.kernel, x), strides=layer.strides, padding=layer.padding,
        output_padding=layer.output_padding, data_format=layer.data_format,
        dilation_rate=layer.dilation_rate,
    )


registry.transpose_rule(L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose,
                        kind="weight")(_transpose_of_linear_part(_conv_transpose_linear))
registry.transpose_rule(L.DepthwiseConv1D, L.DepthwiseConv2D,
                        kind="weight")(_transpose_of_linear_part(_depthwise_linear))
registry.transpose_rule(L.SeparableConv1D, L.SeparableConv2D,
                        kind="weight")(_transpose_of_linear_part(_separable_linear))
