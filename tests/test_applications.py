"""make_reversible on keras.applications models (weights=None)."""

import keras
import numpy as np
import pytest

import keras_reversible as kr

# Constrained points = distinct inputs of the weight layers on the path.
APPS = {
    "VGG19": (keras.applications.VGG19, 16 + 3),  # 16 conv + 3 dense
    # 53 conv + 1 dense; in 4 blocks the projection shortcut and the first
    # conv read the same tensor: one point each.
    "ResNet50": (keras.applications.ResNet50, 54 - 4),
    "DenseNet121": (keras.applications.DenseNet121, 120 + 1),
    "MobileNetV2": (keras.applications.MobileNetV2, 52 + 1),  # conv + depthwise + dense
}


@pytest.mark.parametrize("name", sorted(APPS))
def test_application_trains_with_racecar_loss(name):
    build, expected_points = APPS[name]
    base = build(weights=None, input_shape=(32, 32, 3), classes=10)
    model = kr.make_reversible(base, input_range="relu", racecar_weight=1e-3)
    assert model.num_constrained == expected_points
    assert len(model.weights) == len(base.weights) + len(model.reverse_statistics)
    # A mean and a variance per BatchNormalization that the reverse pass re-applies.
    norms = sum(isinstance(layer, keras.layers.BatchNormalization) for layer in base.layers)
    assert len(model.reverse_statistics) % 2 == 0
    assert (name == "VGG19") == (len(model.reverse_statistics) == 0)
    assert len(model.reverse_statistics) <= 2 * norms
    x = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")
    assert model.reconstruct(x).shape == x.shape
    model.compile("sgd", "sparse_categorical_crossentropy")
    hist = model.fit(x, np.array([1, 2]), epochs=1, verbose=0).history
    assert np.isfinite(hist["loss"][0]) and hist["racecar_loss"][0] > 0


def test_keras_hub_resnet_backbone():
    """keras-hub (pinned in requirements.lock) imports with the pinned Keras."""
    import keras_hub

    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[7],
        stackwise_num_filters=[64, 128, 256, 512], stackwise_num_blocks=[2, 2, 2, 2],
        stackwise_num_strides=[1, 2, 2, 2], block_type="basic_block",
        use_pre_activation=False, image_shape=(32, 32, 3))
    x = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")
    features = kr.make_reversible(backbone, input_range="relu")
    # 1 stem + 16 block + 3 shortcut convs, 20 distinct inputs (measured).
    assert features.num_constrained == 20
    assert features.reconstruct(x).shape == x.shape
    logits = keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(backbone.output))
    model = kr.ReversibleModel(backbone.inputs, logits, input_range="relu", racecar_weight=1e-3)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    hist = model.fit(x, np.array([1, 2]), epochs=1, verbose=0).history
    assert np.isfinite(hist["loss"][0]) and hist["racecar_loss"][0] > 0
