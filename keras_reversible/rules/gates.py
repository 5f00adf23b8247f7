"""Gates: a signal multiplied (or divided) by a tensor computed elsewhere (DESIGN §7).

``Multiply([x, g])`` with ``g`` from another branch (squeeze-excite:
``g = σ(W₂ relu(W₁ GAP(x)))``, gated units) is the diagonal linear map
``diag(g)`` applied to the signal ``x``: the reverse sends ``y' ⊙ g`` (the
forward ``g``) to ``x`` and nothing into the gate branch, whose layers are
not on the reverse path. The signal is the operand with the output's full
shape (the first one when several have it). The forward gate is data: the
racecar loss sends no gradient into the gate branch. ``x * c`` and ``x / c`` by a
constant are the same map with a constant gate. When both operands come from
one tensor (``x * sigmoid(x)``) the product is part of a pointwise region
instead (``keras_reversible.regions``).
"""

import keras
import tensorflow as tf

from keras_reversible import nodes, registry

L = keras.layers


def _full_shape_operand(layer, ctx):
    """The index of the signal: the first input of the output's shape."""
    if len(ctx.input_shapes) == 1:
        return [0]
    want = tuple(ctx.output_shapes[0][1:])
    for i, shape in enumerate(ctx.input_shapes):
        if tuple(shape[1:]) == want:
            return [i]
    raise ValueError(
        f"'{layer.name}' multiplies tensors of shapes {ctx.input_shapes}, none of them "
        f"the output's {ctx.output_shapes[0]}; the reverse pass takes the full-shaped "
        "operand as the signal and the others as a gate.")


def _numerator(layer, ctx):
    """The index of the signal of a division: its numerator, which must be a tensor."""
    args, kwargs = ctx.arguments
    numerator = args[0] if args else kwargs.get("x1")
    if not isinstance(numerator, nodes.InputSlot):
        raise ValueError(
            f"'{layer.name}' divides a constant by a tensor, which is not linear in "
            "that tensor; outside a pointwise region it has no reverse rule.")
    return [numerator.index]


def _gated_transpose(layer, y, ctx):
    """The transpose of the op in its signal, the other inputs held at their forward values."""
    (signal,) = ctx.signal
    # The gate is data taken from the forward pass: no racecar gradient into its branch.
    values = [tf.stop_gradient(ctx.forward_input(i, y)) for i in range(len(ctx.input_shapes))]

    def of_signal(x):
        return ctx.forward(*values[:signal], x, *values[signal + 1:])

    xs = [None] * len(values)
    xs[signal] = registry.vjp(of_signal, [tf.zeros_like(values[signal])], y)[0]
    return xs if len(xs) > 1 else xs[0]


registry.transpose_rule(
    L.Multiply, "keras.src.ops.numpy.Multiply", needs_inputs=True, elementwise=True,
    signal_inputs=_full_shape_operand)(_gated_transpose)
registry.transpose_rule(
    "keras.src.ops.numpy.TrueDivide", "keras.src.ops.numpy.Divide", needs_inputs=True,
    elementwise=True, signal_inputs=_numerator)(_gated_transpose)
