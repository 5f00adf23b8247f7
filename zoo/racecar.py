"""The racecar paper's own networks (appendix A, tables 7 and 9)."""

import keras

import keras_reversible as kr
from zoo import pretrained
from zoo.registry import ModelInfo, register

MI_NET = ModelInfo(
    name="racecar_mi_net",
    paper="racecar",
    table="table 7 (hyper-parameters: table 8)",
    input_shape=(12,),
    num_classes=2,
    reversal=dict(depth=6, racecar_weight=1e-2, reverse_from=None, input_range="tanh",
                  reduction="l2_loss"),
    # The output is tanh-bounded scores.
    task_loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    test_input_shape=(12,),
    # 12·10 + 10 + 10·7 + 7 + 7·5 + 5 + 5·4 + 4 + 4·3 + 3 + 3·2 + 2.
    parameters=294,
    trainable_parameters=294,
    # Copied from docs/pretrained/racecar_mi_net-mi_task.json (tools/train_presets.py).
    presets={"mi_task": pretrained.Preset(
        file="racecar_mi_net-mi_task.weights.h5",
        sha256="569bc867326124a21ad71be8b0afc1f55fd7b29895f4c8d98a12f571fab8eaab",
        command="python tools/train_presets.py --preset=racecar_mi_net/mi_task --install",
        seed=0,
        epochs=2000,
        data="the 12-bit task A, the 3,277 training patterns of load_mi_sphere(seed=0); RR⁶ "
             "(racecar table 8: batch 512, Adam 4e-4, λ = 1e-2 with l2_loss, 2,000 epochs): "
             "the example's phase-I RR6_A model",
        test_data="mi_sphere_A_seed0",
        test_examples=819,
        metric="test_accuracy",
        value=0.8644688644688645,
        date="2026-11-25",
        train_seconds=42.5,
        arguments={"num_classes": 2, "input_shape": (12,)},
        reversal={"depth": 6, "racecar_weight": 0.01, "reverse_from": None,
                  "input_range": "tanh", "reduction": "l2_loss"},
    )},
)


@register(MI_NET)
def racecar_mi_net(num_classes=MI_NET.num_classes, input_shape=MI_NET.input_shape,
                   kernel_regularizer=None, weights=None, **reversal):
    """The fully connected MI network of racecar table 7 (294 parameters).

    ``I(12) → tanh(FC(10)) → tanh(FC(7)) → tanh(FC(5)) → tanh(FC(4)) →
    tanh(FC(3)) → tanh(FC(2)) = O``. The reverse pass starts at ``O`` and
    every layer is constrained (RR⁶); ``L'_1`` goes through ``tanh`` (the
    input range op of table 7's reverse pass). The output is ``tanh``-bounded:
    train it with ``SparseCategoricalCrossentropy(from_logits=True)``.

    Args:
        num_classes: output units (2 in the paper).
        input_shape: ``(12,)`` in the paper.
        kernel_regularizer: regulariser of every kernel, e.g.
            ``kr.SRIP(beta)`` for the paper's ``Ort`` baseline.
        weights: None (random initialisation), ``"mi_task"`` (RR⁶ trained
            on task A, ``docs/pretrained.md``; needs the default
            ``num_classes`` and ``input_shape``) or the path of a
            ``.weights.h5`` file of this architecture.
        **reversal: reversal settings of ``kr.ReversibleModel``; defaults are
            the paper's (λ = 1e-2 with the ``l2_loss`` reduction, depth 6,
            ``input_range="tanh"``). ``depth=0`` gives the Std model,
            ``depth=1`` RR¹.

    Returns:
        A ``kr.ReversibleModel``.

    Raises:
        ValueError: an unknown preset (the message lists the known ones), a
            missing or unfitting weights file, or ``num_classes`` /
            ``input_shape`` other than the preset's.

    Example:

    ```python
    import numpy as np
    import zoo
    model = zoo.racecar_mi_net()
    model.count_params()  # 294
    trained = zoo.racecar_mi_net(weights="mi_task")  # packaged, no data needed
    labels = np.argmax(trained.predict(np.eye(12, dtype="float32"), verbose=0), axis=-1)
    ```

    References:
        Xie & Thuerey, racecar training, section 4 and appendix A.1, table 7.
    """
    source = pretrained.resolve(MI_NET, weights, num_classes=num_classes, input_shape=input_shape)
    inputs = keras.Input(input_shape, name="bits")
    x = inputs
    for i, units in enumerate((10, 7, 5, 4, 3), start=1):
        x = keras.layers.Dense(units, activation="tanh", name=f"fc{i}",
                               kernel_regularizer=kernel_regularizer)(x)
    outputs = keras.layers.Dense(num_classes, activation="tanh", name="fc6",
                                 kernel_regularizer=kernel_regularizer)(x)
    model = kr.ReversibleModel(
        inputs, outputs, name="racecar_mi_net", **MI_NET.settings(input_shape, reversal)
    )
    return pretrained.load(model, source)


MNIST_CNN = ModelInfo(
    name="racecar_mnist_cnn",
    paper="racecar",
    table="table 9 (hyper-parameters: table 10)",
    input_shape=(28, 28, 1),
    num_classes=10,
    reversal=dict(depth=3, racecar_weight=1e-5, reverse_from="conv3", input_range="relu",
                  reduction="l2_loss"),
    task_loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    test_input_shape=(8, 8, 1),
    # conv1 640 + conv2 36,928 + conv3 577 + fc 49·10 + 10 = 38,645.
    parameters=38_645,
    trainable_parameters=38_645,
    gradient_exceptions=("fc",),  # the classifier after I_r
    # Copied from docs/pretrained/racecar_mnist_cnn-mnist.json (tools/train_presets.py).
    presets={"mnist": pretrained.Preset(
        file="racecar_mnist_cnn-mnist.weights.h5",
        sha256="8da54d153006cad03352b02c0764568d844631723fd2ee83aba3653076ad1bae",
        command="python tools/train_presets.py --preset=racecar_mnist_cnn/mnist --install",
        seed=0,
        epochs=12,
        data="MNIST, the first 55,000 of the 60,000 training images (the paper's count, "
             "examples/racecar_mnist.py --preset=full); RR³ (racecar table 10: batch 64, Adam "
             "1e-3, λ = 1e-5 with l2_loss): the example's phase-I RR3_A model",
        test_data="mnist",
        test_examples=10000,
        metric="test_accuracy",
        value=0.9845,
        date="2026-11-25",
        train_seconds=930.7,
        arguments={"num_classes": 10, "input_shape": (28, 28, 1)},
        reversal={"depth": 3, "racecar_weight": 1e-05, "reverse_from": "conv3",
                  "input_range": "relu", "reduction": "l2_loss"},
    )},
)


@register(MNIST_CNN)
def racecar_mnist_cnn(num_classes=MNIST_CNN.num_classes, input_shape=MNIST_CNN.input_shape,
                      kernel_regularizer=None, weights=None, **reversal):
    """The MNIST CNN of racecar table 9 (38,645 parameters).

    ``I(28,28,1) → relu(C(3,64)) → MP → relu(C(3,64)) → MP → relu(C(3,1)) =
    I_r → FC(10)``. The reverse pass starts at ``I_r`` (layer ``conv3``) and
    skips the classifier; ``L'_1`` goes through ``relu`` (images in [0, 1]).
    The output is logits.

    Args:
        num_classes: classes (10).
        input_shape: ``(28, 28, 1)`` in the paper.
        kernel_regularizer: regulariser of every kernel, e.g.
            ``kr.SRIP(beta)`` for the paper's ``Ort`` baseline.
        weights: None (random initialisation), ``"mnist"`` (RR³ trained on
            MNIST, ``docs/pretrained.md``; needs the default ``num_classes``
            and ``input_shape``) or the path of a ``.weights.h5`` file of
            this architecture.
        **reversal: reversal settings; defaults are the paper's (λ = 1e-5
            with ``l2_loss``, depth 3 = RR³). ``depth=0`` gives Std.

    Returns:
        A ``kr.ReversibleModel``.

    Raises:
        ValueError: an unknown preset (the message lists the known ones), a
            missing or unfitting weights file, or ``num_classes`` /
            ``input_shape`` other than the preset's.

    Example:

    ```python
    import numpy as np
    import zoo
    model = zoo.racecar_mnist_cnn()
    model.count_params()  # 38645
    trained = zoo.racecar_mnist_cnn(weights="mnist")  # packaged, no data needed
    regenerated = trained.reconstruct(np.zeros((1, 28, 28, 1), "float32"))  # I'
    ```

    References:
        Xie & Thuerey, racecar training, section 5.1 and appendix A.2, table 9.
    """
    source = pretrained.resolve(MNIST_CNN, weights, num_classes=num_classes,
                                input_shape=input_shape)
    inputs = keras.Input(input_shape, name="image")
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu", name="conv1",
                            kernel_regularizer=kernel_regularizer)(inputs)
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2",
                            kernel_regularizer=kernel_regularizer)(x)
    x = keras.layers.MaxPooling2D(name="pool2")(x)
    x = keras.layers.Conv2D(1, 3, padding="same", activation="relu", name="conv3",
                            kernel_regularizer=kernel_regularizer)(x)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = keras.layers.Dense(num_classes, name="fc", kernel_regularizer=kernel_regularizer)(x)
    model = kr.ReversibleModel(
        inputs, outputs, name="racecar_mnist_cnn", **MNIST_CNN.settings(input_shape, reversal)
    )
    return pretrained.load(model, source)
