"""make_reversible on keras.applications families (weights=None), through the shared harness.

One row of ``FAMILIES`` per family (its smallest member): adding one is one line.
``make test-applications-all`` runs every constructor of ``keras.applications``
through the same harness (``KR_ALL_APPLICATIONS=1``); ``make test`` runs one
member per family. Every model is built with ``unknown_layers="error"``: each
layer it uses has a real rule.
"""

import dataclasses
import os
import pathlib
import subprocess
import sys
from typing import Callable

import keras
import numpy as np
import pytest

import keras_reversible as kr
from reversible_harness import run_reversible_model_test

ROOT = pathlib.Path(__file__).resolve().parents[1]
INPUT_SHAPE = (32, 32, 3)
SETTINGS = dict(input_range="relu", racecar_weight=1e-3, unknown_layers="error")
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
        input_shape: the smallest input the family accepts.
        batch_size: samples in the harness's batch.
    """

    build: Callable
    num_constrained: int
    gradient_exceptions: tuple = ()
    task_gradient_exceptions: tuple = ()
    input_shape: tuple = INPUT_SHAPE
    batch_size: int = 2


# EfficientNets drop each residual branch per sample with stochastic depth (a Dropout
# with noise_shape (batch, 1, 1, 1), rate up to 0.2 in the last blocks). With 2 samples
# some block of the deeper members is dropped for both (EfficientNetV2B1's block6i under
# seed 0) and its variables get no gradient in that step; 8 samples put the chance
# per block at most 0.2⁸ ≈ 3e-6.
STOCHASTIC_DEPTH_BATCH = 8

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
    # Families whose first refusal was a gate, a raw op, a nested model or a private
    # layer (issue 15). The squeeze-excite branches are off the reverse path (not
    # constrained points); they still get a racecar gradient through the forward
    # value of the constrained point after the gate.
    "EfficientNetB0": Family(keras.applications.EfficientNetB0, 50,
                             batch_size=STOCHASTIC_DEPTH_BATCH),
    "EfficientNetV2B0": Family(keras.applications.EfficientNetV2B0, 60,
                               batch_size=STOCHASTIC_DEPTH_BATCH),
    "MobileNetV3Small": Family(keras.applications.MobileNetV3Small, 36),
    "ConvNeXtTiny": Family(keras.applications.ConvNeXtTiny, 59),
    "ResNet50V2": Family(keras.applications.ResNet50V2, 50),
    "MobileNet": Family(keras.applications.MobileNet, 28),
    "Xception": Family(keras.applications.Xception, 40, input_shape=(75, 75, 3)),
    "InceptionV3": Family(keras.applications.InceptionV3, 71, input_shape=(75, 75, 3)),
    "NASNetMobile": Family(keras.applications.NASNetMobile, 197),
    "InceptionResNetV2": Family(keras.applications.InceptionResNetV2, 190,
                                input_shape=(75, 75, 3)),
}
MEMBERS = sorted(name for name in dir(keras.applications) if name[0].isupper())


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_application(name):
    family = FAMILIES[name]

    def build():
        base = family.build(weights=None, input_shape=family.input_shape, classes=10)
        return kr.make_reversible(base, **SETTINGS)

    model = run_reversible_model_test(
        build, family.input_shape, TASK_LOSS, expected_settings=SETTINGS,
        num_constrained=family.num_constrained, gradient_exceptions=family.gradient_exceptions,
        task_gradient_exceptions=family.task_gradient_exceptions, batch_size=family.batch_size)
    # Reverse statistics: none without BatchNormalization (VGG19; ConvNeXt's LayerNormalization).
    assert (name in ("VGG19", "ConvNeXtTiny")) == (len(model.reverse_statistics) == 0)


# Constructor name prefix -> its family's row, most specific first.
PREFIXES = [("EfficientNetV2", "EfficientNetV2B0"), ("EfficientNet", "EfficientNetB0"),
            ("MobileNetV3", "MobileNetV3Small"), ("MobileNetV2", "MobileNetV2"),
            ("MobileNet", "MobileNet"), ("ConvNeXt", "ConvNeXtTiny"), ("DenseNet", "DenseNet121"),
            ("InceptionResNet", "InceptionResNetV2"), ("Inception", "InceptionV3"),
            ("NASNet", "NASNetMobile"), ("Xception", "Xception"), ("VGG", "VGG19")]


def _family_of(member):
    if member.startswith("ResNet"):
        return FAMILIES["ResNet50V2" if member.endswith("V2") else "ResNet50"]
    return next(FAMILIES[family] for prefix, family in PREFIXES if member.startswith(prefix))


def test_every_constructor_has_a_family():
    assert {id(_family_of(name)) for name in MEMBERS} == {id(f) for f in FAMILIES.values()}


@pytest.mark.skipif(os.environ.get("KR_ALL_APPLICATIONS") != "1",
                    reason="every constructor: make test-applications-all")
@pytest.mark.parametrize("name", MEMBERS)
def test_every_application_constructor(name):
    family = _family_of(name)

    def build():
        base = getattr(keras.applications, name)(weights=None, input_shape=family.input_shape,
                                                 classes=10)
        return kr.make_reversible(base, **SETTINGS)

    run_reversible_model_test(
        build, family.input_shape, TASK_LOSS, expected_settings=SETTINGS,
        gradient_exceptions=family.gradient_exceptions,
        task_gradient_exceptions=family.task_gradient_exceptions, batch_size=family.batch_size)


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


def test_keras_hub_task_model_with_a_nested_backbone():
    """A keras-hub task model calls its backbone as a nested functional model: walked flat."""
    import keras_hub

    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 32],
        stackwise_num_blocks=[1, 1], stackwise_num_strides=[1, 2], block_type="basic_block",
        use_pre_activation=False, image_shape=INPUT_SHAPE)
    task = keras_hub.models.ResNetImageClassifier(backbone=backbone, num_classes=10)
    model = kr.make_reversible(task, **SETTINGS)
    assert model.num_constrained == 7  # the backbone's convs and the head (measured)
    x = np.random.default_rng(0).uniform(size=(2, *INPUT_SHAPE)).astype("float32")
    assert model.reconstruct(x).shape == x.shape
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(x, np.array([1, 2]), epochs=1, verbose=0).history
    assert history["racecar_loss"][0] > 0 and np.isfinite(history["loss"][0])


def test_each_application_tool_names_an_unknown_constructor():
    """tools/each_application.py (make test-applications-all) refuses a misspelt name."""
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "each_application.py"), "VGG17"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 2 and "not keras.applications constructors: ['VGG17']" in proc.stderr
