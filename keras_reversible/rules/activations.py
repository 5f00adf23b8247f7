"""Activation layers (kind "pointwise"): range ops, re-applied forward as they are.

A weight layer's fused ``activation`` is handled by the reverse program
(``graph.py``) the same way, as a range op of the next constrained point.
"""

import keras

from keras_reversible import registry

L = keras.layers

registry.range_op_rule(
    L.Activation, L.ReLU, L.LeakyReLU, L.ELU, L.Softmax, L.PReLU,
)(registry.call_forward)
