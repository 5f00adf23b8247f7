"""Activation layers (kind "pointwise"): range ops, re-applied forward as they are.

A weight layer's fused ``activation`` is handled by the reverse program
(``graph.py``) the same way, as a range op of the next constrained point.
"""

import keras

from keras_reversible import registry

L = keras.layers

registry.range_op_rule(L.Activation, L.ReLU, L.LeakyReLU, L.ELU, L.PReLU,
                       elementwise=True)(registry.call_forward)
registry.range_op_rule(L.Softmax)(registry.call_forward)
