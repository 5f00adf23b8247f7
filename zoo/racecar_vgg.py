"""The racecar paper's CIFAR VGG (appendix A.3, table 11)."""

import keras

import keras_reversible as kr
from zoo.registry import ModelInfo, register

L = keras.layers

# Output channels of the 13 convolutions, and the convolutions followed by MP.
_CONVS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)
_POOL_AFTER = (2, 4, 7, 10)

INFO = ModelInfo(
    name="racecar_cifar_vgg",
    paper="racecar",
    table="table 11 (hyper-parameters: table 12)",
    input_shape=(32, 32, 3),
    num_classes=10,
    reversal=dict(depth=13, racecar_weight=1e-7, reverse_from="relu13", input_range="relu",
                  reduction="l2_loss"),
    task_loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    test_input_shape=(16, 16, 3),
    # Convs 3·3·c_in·c_out + c_out, BN 4·c_out (2·c_out trainable):
    #   conv1 1,792 + conv2 36,928 + conv3 73,856 + conv4 147,584
    #   + conv5 295,168 + conv6, conv7 590,080·2 + conv8 1,180,160
    #   + conv9–13 2,359,808·5 → convs 14,714,688; their BN 4·4,224 = 16,896.
    # I_r is 2×2×512 = 2048: fc14 2048·4096 + 4096 = 8,392,704, BN 16,384;
    # fc15 4096·4096 + 4096 = 16,781,312, BN 16,384; fc16 4096·10 + 10 = 40,970.
    # Total 39,979,338; the BN moving statistics (8,448 + 2·8,192) are not trainable.
    parameters=39_979_338,
    trainable_parameters=39_954_506,
    # The classifier after I_r gets no racecar gradient.
    gradient_exceptions=("fc14", "bn14", "fc15", "bn15", "fc16"),
    # Each bias is followed by a BatchNormalization, whose batch mean cancels it.
    task_gradient_exceptions=("conv*/bias", "fc14/bias", "fc15/bias"),
)


@register(INFO)
def racecar_cifar_vgg(num_classes=INFO.num_classes, input_shape=INFO.input_shape, width=1.0,
                      **reversal):
    """The CIFAR VGG of racecar table 11 (39,979,338 parameters at 32×32×3).

    Thirteen ``relu(BN(C(3, n) + b))`` blocks with n = 64, 64 | 128, 128 |
    256, 256, 256 | 512, 512, 512 | 512, 512, 512 and a max-pool (MP) after
    convolutions 2, 4, 7 and 10 (where the table's reverse pass has its UP
    steps), so ``I_r`` = the output of block 13 is 2×2×512 for 32×32 inputs;
    then ``relu(BN(FC(4096) + b))`` twice and ``FC(num_classes)``. The
    reverse pass starts at ``I_r`` (layer ``relu13``) and skips the
    classifier; ``L'_1`` goes through ``relu`` (images in [0, 1]).

    Reading: the table prints ``relu(BN(FC(10) + b16))`` for the last layer;
    a ReLU on the class scores would clip every negative logit, so the last
    layer here is a plain ``FC(num_classes)`` whose output is logits (train
    with ``SparseCategoricalCrossentropy(from_logits=True)``). The table's
    forward line is garbled around convolution 11; its reverse pass (UP
    before ``b10``, ``b7``, ``b4``, ``b2``) fixes the pooling positions.

    Args:
        num_classes: classes (10).
        input_shape: ``(32, 32, 3)`` in the paper.
        width: multiplies the filter count of every convolution and the
            units of fc14 and fc15 (1.0: the paper; 0.125 has 636,146
            parameters, for CPU runs).
        **reversal: reversal settings; defaults are the paper's (λ = 1e-7
            with ``l2_loss``, depth 13 = RR¹³, ``input_range="relu"``).
            ``depth=0`` gives Std.

    Returns:
        A ``kr.ReversibleModel``.

    Example:

    ```python
    import zoo
    model = zoo.racecar_cifar_vgg()
    zoo.info("racecar_cifar_vgg").parameters  # 39979338
    model.count_params()  # 39986762: + the reverse BN statistics
    ```

    References:
        Xie & Thuerey, racecar training, section 5.2 and appendix A.3,
        tables 11 and 12.
    """
    if not width > 0:
        raise ValueError(f"width must be positive, got {width!r}")

    def scaled(n):
        return max(1, int(round(n * width)))

    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for i, filters in enumerate(_CONVS, start=1):
        x = L.Conv2D(scaled(filters), 3, padding="same", name=f"conv{i}")(x)
        x = L.BatchNormalization(name=f"bn{i}")(x)
        x = L.ReLU(name=f"relu{i}")(x)
        if i in _POOL_AFTER:
            x = L.MaxPooling2D(name=f"pool{i}")(x)
    x = L.Flatten(name="flatten")(x)
    for i in (14, 15):
        x = L.Dense(scaled(4096), name=f"fc{i}")(x)
        x = L.BatchNormalization(name=f"bn{i}")(x)
        x = L.ReLU(name=f"relu{i}")(x)
    outputs = L.Dense(num_classes, name="fc16")(x)
    return kr.ReversibleModel(
        inputs, outputs, name="racecar_cifar_vgg", **INFO.settings(input_shape, reversal)
    )
