"""make_reversible on keras.applications families (weights=None), through the shared harness.

One row of ``FAMILIES`` per family: adding one is one line.
"""

import dataclasses
from typing import Callable

import keras
import numpy as np
import pytest

import keras_reversible as kr
from reversible_harness import run_reversible_model_test

INPUT_SHAPE = (32, 32, 3)
SETTINGS = dict(input_range="relu", racecar_weight=1e-3)
TASK_LOSS = "sparse_categorical_crossentropy"  # the applications end with a softmax


@dataclasses.dataclass(frozen=True)
class Family:
    """A keras.applications family as the harness runs it.

    Attributes:
        build: the ``keras.applications`` constructor.
        num_constrained: constrained points (distinct inputs of the weight
            layers on the reverse path).
        gradient_exceptions: variables without a racecar gradient (the
            reverse pass starts at the softmax output: none so far).
        task_gradient_exceptions: variables whose task-loss gradient vanishes
            at this input size.
    """

    build: Callable
    num_constrained: int
    gradient_exceptions: tuple = ()
    task_gradient_exceptions: tuple = ()


FAMILIES = {
    "VGG19": Family(keras.applications.VGG19, 16 + 3),  # 16 conv + 3 dense
    # 53 conv + 1 dense; in 4 blocks the projection shortcut and the first
    # conv read the same tensor: one point each.
    "ResNet50": Family(keras.applications.ResNet50, 54 - 4),
    "DenseNet121": Family(keras.applications.DenseNet121, 120 + 1),
    # conv + depthwise + dense. Blocks 13–16 run at 1×1 here, where a BN's β is
    # a constant shift that the next BN's batch mean cancels (no zero padding
    # at the borders to break it).
    "MobileNetV2": Family(keras.applications.MobileNetV2, 52 + 1,
                          task_gradient_exceptions=("block_1[3-6]_project_BN/beta",)),
}


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_application(name):
    family = FAMILIES[name]

    def build():
        base = family.build(weights=None, input_shape=INPUT_SHAPE, classes=10)
        return kr.make_reversible(base, **SETTINGS)

    model = run_reversible_model_test(
        build, INPUT_SHAPE, TASK_LOSS, expected_settings=SETTINGS,
        num_constrained=family.num_constrained, gradient_exceptions=family.gradient_exceptions,
        task_gradient_exceptions=family.task_gradient_exceptions)
    # Reverse statistics: none without BatchNormalization (VGG19), some with.
    assert (name == "VGG19") == (len(model.reverse_statistics) == 0)


def test_keras_hub_resnet_backbone():
    """keras-hub (pinned in requirements.lock) imports with the pinned Keras."""
    import keras_hub

    def backbone():
        return keras_hub.models.ResNetBackbone(
            input_conv_filters=[64], input_conv_kernel_sizes=[7],
            stackwise_num_filters=[64, 128, 256, 512], stackwise_num_blocks=[2, 2, 2, 2],
            stackwise_num_strides=[1, 2, 2, 2], block_type="basic_block",
            use_pre_activation=False, image_shape=INPUT_SHAPE)

    x = np.random.default_rng(0).uniform(size=(2, *INPUT_SHAPE)).astype("float32")
    features = kr.make_reversible(backbone(), input_range="relu")
    # 1 stem + 16 block + 3 shortcut convs, 20 distinct inputs (measured).
    assert features.num_constrained == 20
    assert features.reconstruct(x).shape == x.shape

    def build():
        net = backbone()
        pooled = keras.layers.GlobalAveragePooling2D()(net.output)
        logits = keras.layers.Dense(10, name="logits")(pooled)
        return kr.ReversibleModel(net.inputs, logits, **SETTINGS)

    run_reversible_model_test(
        build, INPUT_SHAPE, keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        expected_settings=SETTINGS, num_constrained=21,
        # The output is the logits layer's linear output: its reverse Wᵀ(y − b) cancels b.
        gradient_exceptions=("logits/bias",))
