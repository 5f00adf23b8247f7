"""The CIFAR ResNets of He et al. (2016, §4.2): ResNet-20/32/44/56/110 (RN table 2)."""

import keras

import keras_reversible as kr
from zoo import pretrained
from zoo.registry import ModelInfo, register
from zoo.resnet import basic_block, conv_bn, projection
from zoo.rn import RN_REVERSAL

L = keras.layers

DEPTHS = (20, 32, 44, 56, 110)
SHORTCUTS = ("A", "B")
FILTERS = (16, 32, 64)


def _shortcut_a(x, filters, strides, name, **conv):
    """Option A: ``x[:, ::s, ::s, :]`` with zero channels appended, parameter-free.

    Built from layers that have exact reverse rules: a 1×1 average pool with
    stride ``s`` is the subsampling (its transpose scatters back to the kept
    positions), and the channel zero-padding is a ``ZeroPadding3D`` on the
    channel axis seen as a third spatial axis (``Reshape`` to
    ``(H, W, C, 1)`` and back); its transpose crops the padded channels.
    The zeros go after the input's channels, as in He et al.'s Torch code
    (``fb.resnet.torch``: concatenation with ``MulConstant(0)``).
    """
    name = f"{name}_shortcut"
    if strides != 1:
        x = L.AveragePooling2D(1, strides=strides, name=f"{name}_subsample")(x)
    extra = filters - x.shape[-1]
    if extra:
        h, w, c = x.shape[1:]
        x = L.Reshape((h, w, c, 1), name=f"{name}_as_volume")(x)
        x = L.ZeroPadding3D(((0, 0), (0, 0), (0, extra)), name=f"{name}_zero_channels")(x)
        x = L.Reshape((h, w, filters), name=f"{name}_as_image")(x)
    return x


INFO = ModelInfo(
    name="reversible_cifar_resnet",
    paper="RN",
    table="table 2 (He et al. 2016 §4.2, CIFAR ResNet-20…110, `depth` = layers, "
          "the reversal depth is `reverse_depth`; ResNet-110 is table 2's \"ResNet 1.7M\")",
    input_shape=(32, 32, 3),
    num_classes=10,
    reversal=RN_REVERSAL,
    # The network's depth is `depth`: the reversal setting `depth` is `reverse_depth`.
    keywords={"depth": "reverse_depth"},
    task_loss=keras.losses.SparseCategoricalCrossentropy(),  # softmax output
    test_input_shape=(16, 16, 3),
    # ResNet-20, option A (formula: tests/test_cifar_resnet.py; He et al. table 6: 0.27 M).
    parameters=271_098,
    trainable_parameters=269_722,
    # Copied from docs/pretrained/reversible_cifar_resnet-cifar10.json (tools/train_presets.py).
    presets={"cifar10": pretrained.Preset(
        file="reversible_cifar_resnet-cifar10.weights.h5",
        sha256="d3de258ea7eca44876e5c3e933a7c9add23ca51a0aa2017c08204576d9252b67",
        command="python tools/train_presets.py --preset=reversible_cifar_resnet/cifar10 "
                "--install --runs_from=docs/results/rn_cifar_resnet_50k",
        seed=0,
        epochs=40,
        data="CIFAR-10, all 50,000 training images, C10+ augmentation (pad 4, crop, flip), "
             "divided by the channel means; SGD momentum 0.9, lr 0.1 cosine with a 1-epoch "
             "warm-up, decoupled weight decay 1e-3, batch 128 (examples/rn_cifar_resnet.py, "
             "--preset=cpu); the task loss only (reverse_depth=0)",
        test_data="cifar10",
        test_examples=10000,
        metric="test_accuracy",
        value=0.895,
        date="2026-12-04",
        train_seconds=4920.3,
        arguments={"depth": 20, "shortcut": "A", "num_classes": 10, "input_shape": (32, 32, 3)},
        reversal={"depth": 0, "racecar_weight": 1.0, "reverse_from": None, "input_range": None,
                  "reduction": "mean"},
    )},
)


@register(INFO)
def reversible_cifar_resnet(depth=20, num_classes=INFO.num_classes, input_shape=INFO.input_shape,
                            shortcut="A", weights=None, reverse_depth=INFO.reversal["depth"],
                            **reversal):
    """The CIFAR ResNet of He et al. (2016, §4.2) with ``depth = 6n + 2`` layers.

    ``relu(BN(C(3, 16)))`` → three stages of ``n = (depth − 2) / 6``
    BasicBlocks with 16, 32 and 64 filters on 32×32, 16×16 and 8×8 maps
    (the first block of stages 2 and 3 has stride 2) → global average
    pooling → ``softmax(FC(num_classes))``. A BasicBlock is
    ``relu(BN(C3(relu(BN(C3(x))))) + shortcut(x))``; convolutions have no
    bias (BN follows) and He-normal initialisation. Weight layers:
    ``6n + 1`` convolutions and the FC layer (option B adds 2 projections).

    Shortcuts where the shape changes (the first block of stages 2 and 3):

    * ``"A"`` (the default, as He et al. used on CIFAR, §4.2: "we use
      identity shortcuts in all cases (i.e., option A), so our residual
      models have exactly the same number of parameters as the plain
      counterparts"): parameter-free, stride-2 subsampling with the new
      channels zero-padded. Built from standard layers with exact reverse
      rules (1×1 ``AveragePooling2D`` with stride 2, ``Reshape`` →
      ``ZeroPadding3D`` on the channel axis → ``Reshape``), so its reverse
      is its exact transpose.
    * ``"B"``: a projection ``BN(C(1, filters, stride 2))``, as in
      ``reversible_resnet18``.

    Parameters at 32×32×3 with 10 classes (trainable; ``count_params``
    adds BN's moving statistics), option A: ResNet-20 269,722 (271,098),
    ResNet-32 464,154, ResNet-44 658,586, ResNet-56 853,018, ResNet-110
    1,727,962 (1,736,058) — He et al. table 6: 0.27 M … 1.7 M. Option B adds
    2,752 trainable parameters (two 1×1 projections with their BN).

    ResNet-110 (1.7 M) is the size of RN table 2's "ResNet 1.7M" row, whose
    text says ResNet-18 (≈ 11.2 M, ``reversible_resnet18``); both are here.

    Reversal defaults (RN): the reverse pass starts at the softmax output
    ``o``, goes back through the classifier, every residual ``Add`` (copy to
    both branches, the option-A shortcut by its exact transpose) and
    fan-out (sum); only the input is compared (``depth=1``; RN eq. 6),
    λ = 1 with ``reduction="mean"``. Pass ``depth=None`` to constrain every
    convolution's input, ``depth=0`` for the standard network.

    Args:
        depth: 20, 32, 44, 56 or 110 (He et al. table 6; 1202 is not offered).
        num_classes: classes (10 / 100 for CIFAR).
        input_shape: ``(32, 32, 3)``.
        shortcut: ``"A"`` (default, parameter-free) or ``"B"`` (projection).
        weights: None (random initialisation), a preset name or the path
            of a ``.weights.h5`` file saved by ``model.save_weights`` from
            the same architecture. Preset: ``"cifar10"``, ResNet-20 (option
            A) trained with the task loss only on all of CIFAR-10 (C10+, 40
            epochs): 89.50 % test accuracy (``docs/pretrained.md``).
        reverse_depth: the reversal setting ``depth`` of the other
            constructors (``s``, how many constrained points counted from
            the input: 1 = RN's input reconstruction, 0 = the standard
            network, None = all), renamed because ``depth`` is the network's
            depth here. ``model.depth`` reports it, as for every zoo model.
        **reversal: the other reversal settings of ``kr.ReversibleModel``.

    Returns:
        A ``kr.ReversibleModel``.

    Raises:
        ValueError: ``depth`` not in (20, 32, 44, 56, 110), unknown
            ``shortcut``, ``weights`` neither None, a preset nor an existing
            ``.weights.h5`` file of this architecture, or ``depth``,
            ``shortcut``, ``num_classes`` or ``input_shape`` other than the
            preset's.

    Example:

    ```python
    import numpy as np
    import zoo
    model = zoo.reversible_cifar_resnet(depth=20)   # RN: reverse_depth=1
    std = zoo.reversible_cifar_resnet(depth=20, reverse_depth=0)  # plain
    x_bar = model.reconstruct(np.zeros((2, 32, 32, 3), "float32"))  # (2, 32, 32, 3)
    trained = zoo.reversible_cifar_resnet(weights="cifar10")  # packaged, no data needed
    ```

    References:
        He et al., "Deep residual learning for image recognition" (2016),
        §4.2 and table 6; Yu, RN, section 3.1 and table 2.
    """
    if isinstance(depth, bool) or depth not in DEPTHS:
        raise ValueError(f"depth must be one of {DEPTHS} (6n + 2), got {depth!r}.")
    if shortcut not in SHORTCUTS:
        raise ValueError(f"shortcut must be 'A' or 'B', got {shortcut!r}.")
    source = pretrained.resolve(INFO, weights, depth=depth, shortcut=shortcut,
                                num_classes=num_classes, input_shape=input_shape)
    settings = dict(reversal, depth=reverse_depth)
    n = (depth - 2) // 6
    inputs = keras.Input(input_shape, name="image")
    # He et al. initialise as in their [13] (He normal); no bias before BN.
    conv = dict(kernel_initializer="he_normal")
    x = conv_bn(inputs, FILTERS[0], 3, 1, "stem", **conv)
    x = L.ReLU(name="stem_relu")(x)
    for s, filters in enumerate(FILTERS, start=1):
        for b in range(1, n + 1):
            strides = 2 if (s > 1 and b == 1) else 1
            x = basic_block(x, filters, strides, f"stage{s}_block{b}",
                            shortcut=_shortcut_a if shortcut == "A" else projection, **conv)
    x = L.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = L.Dense(num_classes, activation="softmax", name="predictions")(x)
    model = kr.ReversibleModel(inputs, outputs, name=f"reversible_cifar_resnet{depth}",
                               **INFO.settings(input_shape, settings))
    return pretrained.load(model, source)
