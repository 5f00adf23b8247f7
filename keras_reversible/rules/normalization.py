"""Normalization layers (kind "pointwise"): range ops, re-applied forward.

They are the identity in the reverse walk. At the constrained points the
reverse pass re-applies them forward, never inverted, so that ``L'_m`` lives
in the range of ``L_m`` (racecar paper, section 3). BatchNormalization has its
own range op (below); the others are re-applied as they are (``layer.call``).
"""

import keras
import tensorflow as tf

from keras_reversible import registry
from keras_reversible import statistics as statistics_lib
from keras_reversible.rules._common import like

L = keras.layers


@registry.range_op_rule(L.BatchNormalization)
def _batch_norm_range(layer, x, ctx):
    """BN as a range op: γ, β of the forward layer.

    In training the reverse signal is normalised with its own batch
    statistics (and, with ``ctx.update_statistics``, they are folded into the
    reverse moving statistics); otherwise with the reverse moving statistics
    in ``ctx.statistics`` (the forward layer's own when there are none). The
    forward layer's moving averages are never touched.
    """
    # The channel axis counted from the end of the layer's own input, so the
    # op also applies after a rank-changing op such as global pooling.
    rank_in = len(layer.input.shape)
    axis = x.shape.rank + (layer.axis % rank_in) - rank_in
    channels = x.shape[axis]
    gamma = like(layer.gamma, x) if layer.scale else tf.ones([channels], x.dtype)
    beta = like(layer.beta, x) if layer.center else tf.zeros([channels], x.dtype)
    # One fused kernel where possible (as the forward layer uses): the
    # unfused ops keep several batch-sized intermediates for backprop.
    fused = x.shape.rank == 4 and axis == 3 and x.dtype == tf.float32
    reduce = [a for a in range(x.shape.rank) if a != axis]
    bshape = [channels if a == axis else 1 for a in range(x.shape.rank)]

    def normalize(mean, variance):
        return tf.nn.batch_normalization(
            x, tf.reshape(mean, bshape), tf.reshape(variance, bshape),
            tf.reshape(beta, bshape), tf.reshape(gamma, bshape), layer.epsilon)

    if not ctx.training:
        moving = ctx.statistics.get(layer) if ctx.statistics is not None else None
        mean, variance = moving or (layer.moving_mean, layer.moving_variance)
        mean, variance = like(mean, x), like(variance, x)
        if fused:
            return tf.compat.v1.nn.fused_batch_norm(
                x, gamma, beta, mean=mean, variance=variance,
                epsilon=layer.epsilon, is_training=False)[0]
        return normalize(mean, variance)
    if fused:  # its batch variance is already the unbiased one
        y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            x, gamma, beta, epsilon=layer.epsilon, is_training=True)
    else:
        mean, variance = tf.nn.moments(x, reduce)
        y = normalize(mean, variance)
        variance = statistics_lib.bessel_corrected(variance, x, reduce)
    if ctx.update_statistics and ctx.statistics is not None:
        ctx.statistics.update(layer, mean, variance)
    return y


registry.range_op_rule(L.LayerNormalization, L.GroupNormalization, L.UnitNormalization)(
    registry.call_forward)
