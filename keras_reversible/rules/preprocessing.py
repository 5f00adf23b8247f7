"""Invertible preprocessing (kind "structural", a range barrier): the inverse.

Rescaling and Normalization are affine maps of the raw input; the reverse
pass undoes them (their inverse, not their transpose) so that the
reconstruction comes back in the raw input's range, and range ops are not
collected across them.
"""

import keras
import tensorflow as tf

from keras_reversible import registry

L = keras.layers


@registry.transpose_rule(L.Rescaling, range_barrier=True)
def _rescaling_inverse(layer, y, ctx):
    scale = tf.cast(layer.scale, y.dtype)
    offset = tf.cast(layer.offset, y.dtype)
    return (y - offset) / scale


@registry.transpose_rule(L.Normalization, range_barrier=True)
def _normalization_inverse(layer, y, ctx):
    # The layer divides by max(sqrt(variance), epsilon), so a zero-variance
    # feature is scaled by 1/epsilon forward and by epsilon here.
    mean = tf.cast(layer.mean, y.dtype)
    std = tf.maximum(tf.sqrt(tf.cast(layer.variance, y.dtype)), keras.backend.epsilon())
    if layer.invert:
        return (y - mean) / std
    return y * std + mean
