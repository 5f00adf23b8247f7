"""Raw Keras operations: what ``keras.ops.*`` on symbolic tensors leaves in a graph.

``x + 3.0``, ``keras.ops.pad(x, ...)`` or ``keras.ops.split(x, 2)`` become
``keras.Operation`` nodes (``keras.src.ops.numpy.Add``, ...), not layers. Their
rules are keyed by the operation's qualified name (DESIGN §7), so no private
Keras module is imported:

* linear ops (reshape, transpose, pad, concatenate/split, stack/unstack,
  squeeze/expand_dims, mean/sum over axes, slicing, multiplying or dividing
  by a constant) are reversed by their exact transpose, the VJP of the call
  with its other arguments as in the graph;
* adding or subtracting a constant is a bias: the reverse subtracts it, as
  Dense's rule subtracts ``b``;
* elementwise nonlinearities (``relu6``, ``sigmoid``, ``exp``...) are range
  ops, re-applied forward, like ``Activation`` layers;
* ``a * b`` of two tensors is a gate (``rules/gates.py``) unless both come
  from one tensor (a pointwise region such as ``x * sigmoid(x)``).
"""

from keras_reversible import registry

NUMPY = "keras.src.ops.numpy."
NN = "keras.src.ops.nn."
CORE = "keras.src.ops.core."


def _names(prefix, names):
    return [prefix + name for name in names.split()]


# A constant added or subtracted is a bias: Aᵀ(y − c). Elementwise, so they may
# belong to a pointwise region (hard-swish's x + 3).
registry.transpose_rule(*_names(NUMPY, "Add Subtract"), elementwise=True,
                        range_barrier=True)(registry.transpose_of_affine_call)
registry.transpose_rule(*_names(NUMPY, "Negative"), elementwise=True,
                        range_barrier=True)(registry.transpose_of_call)

# Memory layout only: a channel-wise range op behind them is applied in
# their input's shape (like Flatten).
registry.transpose_rule(*_names(NUMPY, "Reshape Squeeze ExpandDims"),
                        reshapes=True)(registry.transpose_of_call)
# Crop ↔ pad; a range op behind a pad applies to the padded signal too.
registry.transpose_rule(*_names(NUMPY, "Pad"))(registry.transpose_of_call)
# Linear, but they move or mix positions: range-op collection stops there.
registry.transpose_rule(
    *_names(NUMPY, "Transpose Moveaxis Swapaxes Concatenate Split Stack Hstack "
                   "Mean Sum GetItem Tile Repeat Flip Roll"),
    *_names(CORE, "Unstack"),
    range_barrier=True)(registry.transpose_of_call)

registry.add_rule(_names(CORE, "Cast StopGradient"),
                  registry.ReverseRule("identity", elementwise=True, name="identity"))

# Elementwise nonlinearities: range ops (the op's own call, constants kept).
registry.range_op_rule(
    *_names(NN, "Relu Relu6 Sigmoid HardSigmoid Silu HardSilu Gelu Elu Selu LeakyRelu "
                "Softplus Softsign LogSigmoid Celu SparsePlus HardTanh SoftShrink "
                "HardShrink TanhShrink Threshold"),
    *_names(NUMPY, "Exp Log Sqrt Square Abs Absolute Tanh Sin Cos Maximum Minimum Clip "
                   "Power Reciprocal Sign"),
    elementwise=True)(registry.call_forward)
registry.range_op_rule(*_names(NN, "Softmax LogSoftmax Sparsemax"))(registry.call_forward)
