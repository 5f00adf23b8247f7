"""The built-in reverse rules, one module per layer family (DESIGN §1).

Each module registers its rules in ``keras_reversible.registry`` next to
their definitions; importing this package (done by ``import
keras_reversible``) registers them all.

* ``weights``: Dense, Conv*, Conv*Transpose, DepthwiseConv*, SeparableConv*.
* ``pooling``: average / max pooling, global pooling, up-sampling.
* ``shape``: Flatten, Reshape, Permute, ZeroPadding*, Cropping*.
* ``merge``: Add, Subtract, Average, Concatenate.
* ``normalization``: BatchNormalization's range op; Layer/Group/Unit
  normalization as pointwise.
* ``activations``: activation layers as pointwise.
* ``preprocessing``: Rescaling and Normalization inverses.
* ``identity``: Dropout and friends.
* ``ops``: raw ``keras.ops`` operations (by qualified name).
* ``applications``: keras.applications' LayerScale, CustomScaleLayer,
  StochasticDepth (by qualified name).
* ``attention``: EinsumDense, Embedding, MultiHeadAttention.
* ``gates``: Multiply (squeeze-excite gates), division by a tensor.
"""

from keras_reversible.rules import (  # noqa: F401  (registers the rules)
    activations,
    applications,
    attention,
    gates,
    identity,
    merge,
    normalization,
    ops,
    pooling,
    preprocessing,
    shape,
    weights,
)
