"""Merges (kind "structural"): linear, reversed by their exact transpose.

Add copies the reverse signal to every input (fan-out: residual blocks),
Concatenate splits it along its axis (dense blocks), Subtract and Average
take the VJP of ``call``.
"""

import keras
import tensorflow as tf

from keras_reversible import registry

L = keras.layers

registry.transpose_rule(L.Subtract, elementwise=True)(registry.transpose_of_call)
registry.transpose_rule(L.Average)(registry.transpose_of_call)


@registry.transpose_rule(L.Add, elementwise=True)
def _add_transpose(layer, y, ctx):
    """Add: a copy of ``y`` to every input (its VJP, without a forward of zeros)."""
    if any(tuple(shape[1:]) != tuple(y.shape[1:]) for shape in ctx.input_shapes):
        return registry.transpose_of_call(layer, y, ctx)  # broadcasting inputs
    return [y] * len(ctx.input_shapes)


@registry.transpose_rule(L.Concatenate)
def _concatenate_transpose(layer, y, ctx):
    """Concatenate: split ``y`` along the axis (its VJP, without a forward of zeros)."""
    axis = layer.axis % len(ctx.input_shapes[0])
    sizes = [shape[axis] for shape in ctx.input_shapes]
    if axis == 0 or any(size is None for size in sizes):
        return registry.transpose_of_call(layer, y, ctx)
    return tf.split(y, sizes, axis=axis)
