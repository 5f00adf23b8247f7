"""Identity-like layers (kind "identity"): Dropout and friends.

The identity in the reverse walk, and invisible to range-op collection.
"""

import keras

from keras_reversible import registry

L = keras.layers

registry.add_rule(
    (
        L.Dropout, L.SpatialDropout1D, L.SpatialDropout2D, L.SpatialDropout3D,
        L.GaussianNoise, L.GaussianDropout, L.AlphaDropout,
        L.ActivityRegularization, L.Identity,
    ),
    registry.ReverseRule("identity", elementwise=True, name="identity"),
)
