"""ResNet-18 (He et al.; RN table 2)."""

import keras

import keras_reversible as kr
from zoo.registry import ModelInfo, register
from zoo.rn import RN_REVERSAL

L = keras.layers

# Inputs up to this many pixels a side get the CIFAR stem.
SMALL_INPUT = 64


def conv_bn(x, filters, kernel, strides, name, kernel_initializer="glorot_uniform"):
    """``BN(C(x))``: a bias-free convolution (BN follows) and its BatchNormalization."""
    x = L.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                 kernel_initializer=kernel_initializer, name=f"{name}_conv")(x)
    return L.BatchNormalization(name=f"{name}_bn")(x)


def projection(x, filters, strides, name, **conv):
    """The projection shortcut ``BN(C(1, filters, strides))`` (He et al.'s option B)."""
    return conv_bn(x, filters, 1, strides, f"{name}_proj", **conv)


def basic_block(x, filters, strides, name, shortcut=projection, **conv):
    """``relu(BN(C3(relu(BN(C3(x))))) + skip)``; ``skip`` is ``x`` or, where the
    shape changes, ``shortcut(x, filters, strides, name)``."""
    skip = x
    if strides != 1 or x.shape[-1] != filters:
        skip = shortcut(x, filters, strides, name, **conv)
    y = conv_bn(x, filters, 3, strides, f"{name}_1", **conv)
    y = L.ReLU(name=f"{name}_1_relu")(y)
    y = conv_bn(y, filters, 3, 1, f"{name}_2", **conv)
    y = L.Add(name=f"{name}_add")([skip, y])
    return L.ReLU(name=f"{name}_out")(y)


INFO = ModelInfo(
    name="reversible_resnet18",
    paper="RN",
    table="table 2 (He et al. 2016, ResNet-18; the 1.7 M of table 2's \"ResNet 1.7M\" "
          "row is `reversible_cifar_resnet(depth=110)`)",
    input_shape=(32, 32, 3),
    num_classes=10,
    reversal=RN_REVERSAL,
    task_loss=keras.losses.SparseCategoricalCrossentropy(),  # softmax output
    test_input_shape=(16, 16, 3),
    # He et al.'s CIFAR ResNet-18: 11.17 M trainable.
    parameters=11_183_562,
    trainable_parameters=11_173_962,
)


@register(INFO)
def reversible_resnet18(num_classes=INFO.num_classes, input_shape=INFO.input_shape, **reversal):
    """ResNet-18: BasicBlocks [2, 2, 2, 2] with 64, 128, 256, 512 filters.

    Stem, chosen by ``input_shape``: up to 64 pixels a side (CIFAR, the
    default) ``relu(BN(C(3, 64)))`` with no max-pool; larger inputs
    (ImageNet) ``relu(BN(C(7, 64, stride 2)))`` and a 3×3 stride-2 max-pool.
    Each BasicBlock is ``relu(BN(C3(relu(BN(C3(x))))) + shortcut)``; the
    first block of stages 2–4 has stride 2 and a projection shortcut
    ``BN(C(1, n, stride 2))``. Convolutions have no bias (BN follows).
    Head: global average pooling, ``softmax(FC(num_classes))``. At 32×32×3
    with 10 classes: 11,173,962 trainable parameters (11,183,562 with BN's
    moving statistics, as ``count_params`` counts).

    RN table 2 lists "ResNet 1.7M" parameters, which is not ResNet-18
    (≈ 11.2 M; 1.7 M is the size of the CIFAR ResNet-110 of He et al.);
    the paper's text says ResNet-18, which is what this builds. The 1.7 M
    network is ``zoo.reversible_cifar_resnet(depth=110)``.

    Reversal defaults (RN): the reverse pass starts at the softmax output
    ``o``, goes back through the classifier, every residual ``Add`` (copy to
    both branches) and fan-out (sum), and only the input is compared
    (``depth=1``; RN eq. 6), λ = 1 with ``reduction="mean"``. Pass
    ``depth=None`` to constrain every convolution's input (RR-style), or
    ``reverse_from="stage4_block2_out"`` to start at the last block.

    Args:
        num_classes: classes (10 / 100 for CIFAR, 1000 for ImageNet).
        input_shape: ``(32, 32, 3)``; e.g. ``(224, 224, 3)`` for ImageNet.
        **reversal: reversal settings of ``kr.ReversibleModel``.

    Returns:
        A ``kr.ReversibleModel``.

    Example:

    ```python
    import zoo
    model = zoo.reversible_resnet18(num_classes=10)
    model.num_constrained  # 18: 17 distinct conv inputs + the classifier's
    ```

    References:
        Yu, RN, section 3.1 and table 2; He et al., "Deep residual learning
        for image recognition" (2016).
    """
    small = max(input_shape[:2]) <= SMALL_INPUT
    inputs = keras.Input(input_shape, name="image")
    if small:
        x = conv_bn(inputs, 64, 3, 1, "stem")
        x = L.ReLU(name="stem_relu")(x)
    else:
        x = conv_bn(inputs, 64, 7, 2, "stem")
        x = L.ReLU(name="stem_relu")(x)
        x = L.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    for s, filters in enumerate((64, 128, 256, 512), start=1):
        for b in (1, 2):
            strides = 2 if (s > 1 and b == 1) else 1
            x = basic_block(x, filters, strides, f"stage{s}_block{b}")
    x = L.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = L.Dense(num_classes, activation="softmax", name="predictions")(x)
    return kr.ReversibleModel(
        inputs, outputs, name="reversible_resnet18", **INFO.settings(input_shape, reversal)
    )
