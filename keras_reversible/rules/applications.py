"""keras.applications' own layers, keyed by qualified name (no private import).

* ``LayerScale`` (ConvNeXt): ``γ ⊙ x``, a diagonal linear map: ``γ ⊙ y``.
* ``CustomScaleLayer`` (InceptionResNetV2): ``a + scale · b``: ``[y, scale · y]``.
* ``StochasticDepth`` (ConvNeXt): the identity at inference, and so in the
  reverse pass (like Dropout).

All linear: their exact transpose, the VJP of the layer's call.
"""

from keras_reversible import registry

registry.transpose_rule("keras.src.applications.convnext.LayerScale",
                        elementwise=True)(registry.transpose_of_call)
registry.transpose_rule("keras.src.applications.inception_resnet_v2.CustomScaleLayer")(
    registry.transpose_of_call)
registry.add_rule(["keras.src.applications.convnext.StochasticDepth"],
                  registry.ReverseRule("identity", elementwise=True, name="identity"))
