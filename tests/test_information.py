"""Binning mutual-information estimator (information planes)."""

import numpy as np
import pytest

import zoo
from keras_reversible import data, information

RNG = np.random.default_rng(0)


def test_identity_layer_keeps_all_input_information():
    x, y = data.load_mi_sphere(seed=0)[0]
    i_xt, i_ty = information.mutual_information(x, y, num_bins=2, value_range=(0, 1))
    assert i_xt == pytest.approx(np.log2(len(x)))  # every pattern distinct
    p = y.mean()
    h_y = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
    assert i_ty == pytest.approx(h_y)  # the input determines the label


def test_constant_layer_has_no_information():
    t = np.zeros((50, 4))
    assert information.mutual_information(t, np.arange(50) % 2) == (0.0, 0.0)


def test_label_copy_and_bounds():
    y = RNG.integers(0, 2, size=400)
    t = np.stack([y * 2.0 - 1.0, RNG.uniform(-1, 1, size=400)], axis=1)
    i_xt, i_ty = information.mutual_information(t, y, num_bins=30)
    h_y = -sum(p * np.log2(p) for p in np.bincount(y) / 400)
    assert i_ty == pytest.approx(h_y)
    assert i_ty <= i_xt <= np.log2(400) + 1e-9
    # Fewer bins can only lose information about X.
    assert information.mutual_information(t, y, num_bins=3)[0] < i_xt


def test_bins_clip_out_of_range_values():
    symbols = information.bin_activations(np.array([[-5.0], [-0.99], [0.99], [5.0]]), num_bins=2)
    assert symbols.tolist() == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="high > low"):
        information.bin_activations(np.zeros((2, 1)), value_range=(1, 1))


def test_information_plane_of_the_mi_net():
    model = zoo.racecar_mi_net()
    x, y = data.load_mi_sphere(seed=0)[0]
    plane = information.information_plane(model, x, y)
    assert [name for name, _, _ in plane] == ["fc1", "fc2", "fc3", "fc4", "fc5", "fc6"]
    for _, i_xl, i_ly in plane:
        assert 0 <= i_ly <= i_xl <= np.log2(len(x)) + 1e-9


def test_information_plane_callback_records_every_n_epochs():
    import keras

    (x, y), _ = data.load_mi_sphere(seed=0)
    model = zoo.racecar_mi_net(depth=0)
    model.compile(keras.optimizers.Adam(1e-2),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    plane = information.InformationPlane(x, y, every=2)
    model.fit(x, y, batch_size=512, epochs=5, verbose=0, callbacks=[plane])
    assert [h["epoch"] for h in plane.history] == [0, 2, 4]
    assert plane.layer_names == ["fc1", "fc2", "fc3", "fc4", "fc5", "fc6"]
    assert plane.history[0]["layers"] != plane.history[-1]["layers"]
    # Epoch 5 is not recorded; measure the final model directly and check the
    # callback measures the same way (same probe, bins and range).
    plane.on_epoch_end(5)
    now = information.information_plane(model, x, y)
    assert [h["epoch"] for h in plane.history] == [0, 2, 4, 6]
    assert plane.history[-1]["layers"] == [[xl, ly] for _, xl, ly in now]
    with pytest.raises(ValueError, match="every must be >= 1"):
        information.InformationPlane(x, y, every=0)
    with pytest.raises(ValueError, match="inputs but"):
        information.InformationPlane(x, y[:-1])
