"""Shape-only layers: reshape back, crop ↔ pad (kind "structural").

All are linear, reversed by their exact transpose (the VJP of ``call``).
Flatten, Reshape and Permute change the memory layout, so a channel-wise
range op found behind them is applied in their input's shape.
"""

import keras

from keras_reversible import registry

L = keras.layers

registry.transpose_rule(L.Flatten, L.Reshape, L.Permute, reshapes=True)(
    registry.transpose_of_call)
registry.transpose_rule(
    L.ZeroPadding1D, L.ZeroPadding2D, L.ZeroPadding3D,
    L.Cropping1D, L.Cropping2D, L.Cropping3D,
)(registry.transpose_of_call)
