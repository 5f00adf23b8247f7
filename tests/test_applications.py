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
    assert len(model.weights) == len(base.weights)
    x = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")
    assert model.reconstruct(x).shape == x.shape
    model.compile("sgd", "sparse_categorical_crossentropy")
    hist = model.fit(x, np.array([1, 2]), epochs=1, verbose=0).history
    assert np.isfinite(hist["loss"][0]) and hist["racecar_loss"][0] > 0
