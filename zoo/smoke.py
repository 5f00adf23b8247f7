"""The racecar paper's smoke super-resolution GAN (appendix A.4, table 13)."""

import keras

import keras_reversible as kr
from zoo.registry import ModelInfo, register

L = keras.layers

# tf.nn.leaky_relu's default slope (the racecar code is TensorFlow; the paper
# gives none).
LEAKY_SLOPE = 0.2


def _scaled(filters, width):
    """``filters`` scaled by ``width`` (at least one channel)."""
    if not width > 0:
        raise ValueError(f"width must be positive, got {width!r}")
    return max(1, int(round(filters * width)))


GENERATOR = ModelInfo(
    name="smoke_generator",
    paper="racecar",
    table="table 13 (hyper-parameters: table 14)",
    input_shape=(16, 16, 1),
    num_classes=1,
    reversal=dict(depth=6, racecar_weight=0.1, reverse_from=None, input_range="relu",
                  reduction="l2_loss"),
    # An L2 loss against the 64×64 high-resolution frame (plus the GAN loss).
    task_loss=keras.losses.MeanSquaredError(),
    test_input_shape=(4, 4, 1),
    # 5·5·c_in·c_out + c_out: 1,664 + 204,928 + 409,728 + 204,864 + 51,232 + 801.
    parameters=873_217,
    trainable_parameters=873_217,
)


@register(GENERATOR)
def smoke_generator(num_classes=GENERATOR.num_classes, input_shape=GENERATOR.input_shape,
                    width=1.0, **reversal):
    """The smoke super-resolution generator of racecar table 13 (873,217 parameters).

    ``I(16,16,1) → relu(C(5,64)) → UP → relu(C(5,128)) → UP →
    relu(C(5,128)) → relu(C(5,64)) → relu(C(5,32)) → relu(C(5,num_classes))
    = O(64,64,1) = I_r``, stride 1, ``"same"`` padding, UP = nearest ×2. The
    reverse pass starts at ``O`` and constrains all six layers (RR⁶); it
    undoes UP with a 2×2 max-pool (the table's MP; the library's default
    ``upsample_reverse="max_pool"``) and ends with ``relu`` (the input
    range op), giving ``I'(16,16,1)``. Train it with an L2 loss against the
    64×64 high-resolution frame, plus the discriminator's GAN loss.

    Args:
        num_classes: output channels (1: the smoke density).
        input_shape: the low-resolution frame, ``(16, 16, 1)``.
        width: multiplies the hidden layers' filter counts (1.0: the paper;
            smaller values make CPU-sized models of the same layout).
        **reversal: reversal settings; defaults are the paper's (λ = 0.1
            with ``l2_loss``, depth 6, ``input_range="relu"``).

    Returns:
        A ``kr.ReversibleModel``.

    Example:

    ```python
    import zoo
    model = zoo.smoke_generator()
    model.output.shape  # (None, 64, 64, 1)
    ```

    References:
        Xie & Thuerey, racecar training, section 5.3 and appendix A.4,
        tables 13 and 14.
    """
    inputs = keras.Input(input_shape, name="low_res")
    x = inputs
    for i, filters in enumerate((64, 128, 128, 64, 32), start=1):
        x = L.Conv2D(_scaled(filters, width), 5, padding="same", activation="relu",
                     name=f"conv{i}")(x)
        if i <= 2:
            x = L.UpSampling2D(name=f"up{i}")(x)
    outputs = L.Conv2D(num_classes, 5, padding="same", activation="relu", name="conv6")(x)
    return kr.ReversibleModel(
        inputs, outputs, name="smoke_generator", **GENERATOR.settings(input_shape, reversal)
    )


DISCRIMINATOR = ModelInfo(
    name="smoke_discriminator",
    paper="racecar",
    table="table 13 (hyper-parameters: table 14)",
    input_shape=(64, 64, 2),
    num_classes=1,
    reversal=None,  # a plain keras.Model
    task_loss=keras.losses.BinaryCrossentropy(from_logits=True),  # real / generated
    test_input_shape=(16, 16, 2),
    # Convs 1,632 + 51,264 + 204,928 + 819,456 = 1,077,280, BN 4·(32 + 64 + 128 + 256)
    # = 1,920 (half of it moving statistics), fc5 64·64·256 + 1 = 1,048,577.
    parameters=2_127_777,
    trainable_parameters=2_126_817,
    # Each convolution's bias is followed by a BatchNormalization.
    task_gradient_exceptions=("conv*/bias",),
)


@register(DISCRIMINATOR)
def smoke_discriminator(num_classes=DISCRIMINATOR.num_classes,
                        input_shape=DISCRIMINATOR.input_shape, width=1.0):
    """The smoke discriminator of racecar table 13 (2,127,777 parameters); not reversible.

    ``I(64,64,2) → lrelu(BN(C(5,32) + b1)) → lrelu(BN(C(5,64) + b2)) →
    lrelu(BN(C(5,128) + b3)) → lrelu(BN(C(5,256) + b4)) → FC(1) + b5 = O``.
    The input is the high-resolution frame (64,64,1) concatenated with the
    low-resolution frame up-sampled to (64,64,1). The table writes every
    convolution as ``C(5, n, 1)``: stride 1, as in the generator, so FC(1)
    reads 64·64·256 features (it alone holds 1,048,577 parameters).
    Leaky ReLU slope 0.2 (TensorFlow's default; the paper gives none). The
    output is a logit: train with ``BinaryCrossentropy(from_logits=True)``.

    Args:
        num_classes: output units (1).
        input_shape: ``(64, 64, 2)``.
        width: multiplies the filter counts (1.0: the paper).

    Returns:
        A plain ``keras.Model`` (the paper trains no reverse pass here).

    Example:

    ```python
    import zoo
    model = zoo.smoke_discriminator()
    model.count_params()  # 2127777
    ```

    References:
        Xie & Thuerey, racecar training, appendix A.4, table 13.
    """
    inputs = keras.Input(input_shape, name="frames")
    x = inputs
    for i, filters in enumerate((32, 64, 128, 256), start=1):
        x = L.Conv2D(_scaled(filters, width), 5, padding="same", name=f"conv{i}")(x)
        x = L.BatchNormalization(name=f"bn{i}")(x)
        x = L.LeakyReLU(LEAKY_SLOPE, name=f"lrelu{i}")(x)
    x = L.Flatten(name="flatten")(x)
    outputs = L.Dense(num_classes, name="fc5")(x)
    return keras.Model(inputs, outputs, name="smoke_discriminator")
