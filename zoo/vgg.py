"""VGG-19 (racecar §5.4 / table 16 on ImageNet; RN table 2 on CIFAR)."""

import keras

import keras_reversible as kr
from zoo.registry import ModelInfo, SmallInput, register

L = keras.layers

# Inputs up to this many pixels a side get the CIFAR layout.
SMALL_INPUT = 64

_STAGES = (64, 128, 256, 512, 512)
_CONVS_PER_STAGE = (2, 2, 4, 4, 4)

INFO = ModelInfo(
    name="reversible_vgg19",
    paper="racecar",
    table="§5.4, tables 15–16 (CIFAR layout: RN table 2)",
    input_shape=(224, 224, 3),
    num_classes=1000,
    # Racecar table 15: RR¹⁶ from the last convolution.
    reversal=dict(depth=16, racecar_weight=1e-10, reverse_from="block5_conv4",
                  input_range="relu", reduction="l2_loss"),
    gradient_exceptions=("fc1", "fc2", "predictions"),  # the classifier after I_r
    # The CIFAR layout: racecar's CIFAR λ (table 12); I_r after the last BN-ReLU.
    small_input=SmallInput(
        max_side=SMALL_INPUT,
        reversal=dict(racecar_weight=1e-7, reverse_from="block5_relu4"),
        gradient_exceptions=("predictions",),
    ),
    # Every bias of the CIFAR layout is followed by a BatchNormalization.
    task_gradient_exceptions=("block*_conv*/bias",),
    task_loss=keras.losses.SparseCategoricalCrossentropy(),  # softmax output
    test_input_shape=(32, 32, 3),
    # keras.applications.VGG19 at 224×224×3, 1000 classes (racecar §5.4).
    parameters=143_667_240,
    trainable_parameters=143_667_240,
)


@register(INFO)
def reversible_vgg19(num_classes=INFO.num_classes, input_shape=INFO.input_shape, width=1.0,
                     **reversal):
    """VGG-19 with RR¹⁶ (racecar §5.4): 16 convolutions, the last one is ``I_r``.

    Two layouts, chosen by ``input_shape``:

    * more than 64 pixels a side (ImageNet, the default): the standard
      VGG-19 of Simonyan & Zisserman, as ``keras.applications.VGG19``:
      16 ``relu(C(3, n) + b)`` in five stages (64, 128, 256, 512, 512
      filters; 2, 2, 4, 4, 4 convolutions) each ending with a 2×2 max-pool,
      then ``relu(FC(4096))`` twice and ``softmax(FC(num_classes))``:
      143,667,240 parameters at 224×224×3 with 1000 classes (the paper's
      "ca. 143 million weights"). ``I_r`` = ``block5_conv4``.
    * up to 64 pixels a side (CIFAR): the common CIFAR VGG-19 (as in the
      RN paper's experiments): the same 16 convolutions, each
      ``relu(BN(C(3, n) + b))`` (racecar table 11's block), the same five
      max-pools (1×1×512 at 32×32), then ``softmax(FC(num_classes))``:
      20,051,530 parameters (20,040,522 trainable) for 10 classes.
      ``I_r`` = ``block5_relu4``.

    RN table 2 lists "VGG-19 13.4M" parameters for CIFAR; no VGG-19 layout
    we know gives that (the CIFAR VGG-19 above has ≈ 20.0 M, the ImageNet
    one 143.7 M, its 16 convolutions alone 20.0 M); the layouts above are
    the standard ones. Racecar table 16 (VGG-19's forward/reverse pass) is
    not in our copy of the paper; the reverse pass follows tables 9 and 11.

    Defaults (racecar, table 15): RR¹⁶ (``depth=16``) from the last
    convolution, λ = 1e-10 with ``l2_loss`` (1e-7, racecar's CIFAR value of
    table 12, for the CIFAR layout), ``input_range="relu"`` (images in
    [0, 1]; pass ``input_range=None`` for mean-subtracted inputs). The
    output is a softmax.

    Args:
        num_classes: classes (1000 for ImageNet).
        input_shape: ``(224, 224, 3)`` for ImageNet, ``(32, 32, 3)`` for CIFAR.
        width: multiplies every convolution's filter count (1.0: VGG-19;
            smaller values make CPU-sized models of the same layout).
        **reversal: reversal settings of ``kr.ReversibleModel``.

    Returns:
        A ``kr.ReversibleModel``.

    Example:

    ```python
    import zoo
    model = zoo.reversible_vgg19(num_classes=10, input_shape=(32, 32, 3))
    model.depth  # 16
    ```

    References:
        Xie & Thuerey, racecar training, section 5.4 and appendix A.6,
        tables 15 and 16; Yu, RN, table 2; Simonyan & Zisserman, "Very deep
        convolutional networks for large-scale image recognition".
    """
    if not width > 0:
        raise ValueError(f"width must be positive, got {width!r}")
    small = INFO.small_input.applies(input_shape)
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for b, (filters, n) in enumerate(zip(_STAGES, _CONVS_PER_STAGE), start=1):
        filters = max(1, int(round(filters * width)))
        for i in range(1, n + 1):
            name = f"block{b}_conv{i}"
            if small:
                x = L.Conv2D(filters, 3, padding="same", name=name)(x)
                x = L.BatchNormalization(name=f"block{b}_bn{i}")(x)
                x = L.ReLU(name=f"block{b}_relu{i}")(x)
            else:
                x = L.Conv2D(filters, 3, padding="same", activation="relu", name=name)(x)
        x = L.MaxPooling2D(name=f"block{b}_pool")(x)
    x = L.Flatten(name="flatten")(x)
    if not small:
        x = L.Dense(4096, activation="relu", name="fc1")(x)
        x = L.Dense(4096, activation="relu", name="fc2")(x)
    outputs = L.Dense(num_classes, activation="softmax", name="predictions")(x)
    return kr.ReversibleModel(
        inputs, outputs, name="reversible_vgg19", **INFO.settings(input_shape, reversal)
    )
