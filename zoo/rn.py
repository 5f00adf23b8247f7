"""The RN paper's baseline network (table 1)."""

import keras

import keras_reversible as kr
from zoo.registry import ModelInfo, register

L = keras.layers

# RN's reconstruction (eq. 3, 6, 7): from the network output o back to the
# input, only the input compared (depth 1), added to the task loss unweighted.
RN_REVERSAL = dict(depth=1, racecar_weight=1.0, reverse_from=None, input_range=None,
                   reduction="mean")

# PyTorch's default slope (the RN code is PyTorch; the paper gives no value).
LEAKY_SLOPE = 0.01


INFO = ModelInfo(
    name="rn_baseline",
    paper="RN",
    table="table 1 (results: table 2)",
    input_shape=(32, 32, 3),
    num_classes=10,
    reversal=RN_REVERSAL,
    task_loss=keras.losses.SparseCategoricalCrossentropy(),  # softmax output
    test_input_shape=(16, 16, 3),
    # 5·5·c_in·c_out + c_out: 2,432 + 25,632 + 51,264 + 102,464 + 204,928
    # + 409,728 = 796,448; fc1 2048·256 + 256 = 524,544; fc2 256·10 + 10 = 2,570.
    parameters=1_323_562,
    trainable_parameters=1_323_562,
)


@register(INFO)
def rn_baseline(num_classes=INFO.num_classes, input_shape=INFO.input_shape, **reversal):
    """The baseline network of RN table 1 (1,323,562 parameters for 10 classes).

    ``I(32,32,3) → lrelu(C(5,32)) → lrelu(C(5,32)) → MP → lrelu(C(5,64)) →
    lrelu(C(5,64)) → MP → lrelu(C(5,128)) → lrelu(C(5,128)) → MP →
    lrelu(FC1(2048→256)) → softmax(FC2(256→N)) = o``, convolutions with
    ``"same"`` padding, leaky ReLU slope 0.01 (PyTorch's default; the paper
    gives none).

    Reading: table 1 lists two max-pools, but its FC1 is 2048 × 256 and its
    parameter column says 1.3 M; 2048 = 128·4·4 needs a third down-sampling
    of a 32×32 input. This model puts a third max-pool after the last
    convolution (``pool3``), which gives FC1 exactly 2048 inputs and 1.32 M
    parameters in all.

    The reverse pass starts at the softmax output ``o`` (RN eq. 3–4) and
    goes through the classifier back to the input; only the input is
    compared (``depth=1``: RN eq. 6). RN adds the previous layer's bias in
    its reverse Dense (eq. 4: ``γ(o·Wᵀ + b_{t−1})``); the library uses
    racecar's ``Wᵀ(y − b)`` form. Defaults: λ = 1, ``reduction="mean"``
    (RN eq. 6 sums squares over pixels: ``reduction="l2_loss",
    racecar_weight=2.0`` gives that sum over the batch), identity input range.
    The output is a softmax: train with ``sparse_categorical_crossentropy``.

    Args:
        num_classes: N, the classes (10 for CIFAR-10, 100 for CIFAR-100).
        input_shape: ``(32, 32, 3)`` (CIFAR).
        **reversal: reversal settings of ``kr.ReversibleModel``; e.g.
            ``latent_generation=True`` for RNL (RN eq. 8), ``depth=0`` for
            the NN baseline.

    Returns:
        A ``kr.ReversibleModel``.

    Example:

    ```python
    import zoo
    model = zoo.rn_baseline()
    model.count_params()  # 1323562
    ```

    References:
        Yu, "Boosting mapping functionality of neural networks via latent
        feature generation based on reversible learning", section 3.1,
        tables 1 and 2.
    """
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for i, filters in enumerate((32, 32, 64, 64, 128, 128), start=1):
        x = L.Conv2D(filters, 5, padding="same", name=f"conv{i}")(x)
        x = L.LeakyReLU(LEAKY_SLOPE, name=f"lrelu{i}")(x)
        if i % 2 == 0:
            x = L.MaxPooling2D(name=f"pool{i // 2}")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(256, name="fc1")(x)
    x = L.LeakyReLU(LEAKY_SLOPE, name="lrelu_fc1")(x)
    outputs = L.Dense(num_classes, activation="softmax", name="fc2")(x)
    return kr.ReversibleModel(
        inputs, outputs, name="rn_baseline", **INFO.settings(input_shape, reversal)
    )
