"""DenseNet-40 with growth rate k = 12 (Huang et al.; RN table 2)."""

import keras

import keras_reversible as kr
from zoo.registry import ModelInfo, register
from zoo.rn import RN_REVERSAL

L = keras.layers


def _bn_relu_conv(x, filters, kernel, name):
    x = L.BatchNormalization(name=f"{name}_bn")(x)
    x = L.ReLU(name=f"{name}_relu")(x)
    return L.Conv2D(filters, kernel, padding="same", use_bias=False, name=f"{name}_conv")(x)


INFO = ModelInfo(
    name="reversible_densenet40",
    paper="RN",
    table="table 2 (Huang et al. 2017, DenseNet-40, k = 12)",
    input_shape=(32, 32, 3),
    num_classes=10,
    reversal=RN_REVERSAL,
    task_loss=keras.losses.SparseCategoricalCrossentropy(),  # softmax output
    test_input_shape=(16, 16, 3),
    # Huang et al.: 1.0 M.
    parameters=1_037_818,
    trainable_parameters=1_019_722,
)


@register(INFO)
def reversible_densenet40(num_classes=INFO.num_classes, input_shape=INFO.input_shape,
                          growth_rate=12, **reversal):
    """DenseNet-40 (k = 12): 3 dense blocks of 12 layers, ≈ 1.0 M parameters.

    ``C(3, 16)`` → [dense block of 12 layers ``BN-ReLU-C(3, k)`` whose
    outputs are concatenated to their inputs → transition ``BN-ReLU-C(1)``
    (no compression) and 2×2 average pool] ×2 → dense block → BN-ReLU →
    global average pooling → ``softmax(FC(num_classes))``. Depth 40 =
    1 + 3·12 + 2 + 1 weight layers; channels 16 → 160 → 304 → 448. No
    bottlenecks, no dropout (the data-augmented setting). At 32×32×3 with 10
    classes: 1,019,722 trainable parameters (RN table 2: 1.0 M), 1,037,818
    with BN's moving statistics (as ``count_params`` counts them).

    Reversal defaults (RN): from the softmax output back to the input
    through every concatenation (split) and fan-out (sum), only the input
    compared (``depth=1``), λ = 1 with ``reduction="mean"``. Pass
    ``depth=None`` to constrain the input of every weight layer.

    Args:
        num_classes: classes (10 / 100 for CIFAR).
        input_shape: ``(32, 32, 3)``.
        growth_rate: k (12).
        **reversal: reversal settings of ``kr.ReversibleModel``.

    Returns:
        A ``kr.ReversibleModel``.

    Example:

    ```python
    import zoo
    model = zoo.reversible_densenet40(num_classes=100)
    model.output.shape  # (None, 100)
    ```

    References:
        Yu, RN, section 3.1 and table 2; Huang et al., "Densely connected
        convolutional networks" (2017), DenseNet (L = 40, k = 12).
    """
    inputs = keras.Input(input_shape, name="image")
    x = L.Conv2D(16, 3, padding="same", use_bias=False, name="conv0")(inputs)
    for block in (1, 2, 3):
        for layer in range(1, 13):
            name = f"block{block}_layer{layer}"
            y = _bn_relu_conv(x, growth_rate, 3, name)
            x = L.Concatenate(name=f"{name}_concat")([x, y])
        if block < 3:
            x = _bn_relu_conv(x, x.shape[-1], 1, f"transition{block}")
            x = L.AveragePooling2D(2, name=f"transition{block}_pool")(x)
    x = L.BatchNormalization(name="final_bn")(x)
    x = L.ReLU(name="final_relu")(x)
    x = L.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = L.Dense(num_classes, activation="softmax", name="predictions")(x)
    return kr.ReversibleModel(
        inputs, outputs, name="reversible_densenet40", **INFO.settings(input_shape, reversal)
    )
