"""keras_reversible.data EBPC composite, on tfds.testing.mock_data (the real sources download)."""

import numpy as np
import pytest

from keras_reversible import data

tfds = pytest.importorskip("tensorflow_datasets")


def test_offsets_follow_class_counts():
    offsets, total = data.ebpc_class_offsets()
    assert offsets == {"mnist": 0, "cifar10": 10, "cifar100": 20, "stanford_dogs": 120,
                       "oxford_flowers102": 240}
    assert total == 342
    with pytest.raises(ValueError, match="twice"):
        data.ebpc_class_offsets(("mnist", "mnist"))


def test_composite_on_mock_data():
    with tfds.testing.mock_data(num_examples=6):
        ds, offsets, total = data.ebpc_dataset("train", batch_size=8)
        xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    x, y = np.concatenate(xs), np.concatenate(ys)
    assert x.shape == (30, 64, 64, 3) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert y.dtype == np.int32 and 0 <= y.min() and y.max() < total
    # Every source contributes 6 examples inside its own label range.
    bounds = sorted(offsets.values()) + [total]
    per_source = np.histogram(y, bins=bounds)[0]
    assert per_source.tolist() == [6] * 5


def test_unshuffled_order_and_size():
    with tfds.testing.mock_data(num_examples=3):
        ds, offsets, _ = data.ebpc_dataset("test", sources=("mnist", "cifar10"), batch_size=6,
                                           image_size=32)
        x, y = next(iter(ds))
    assert tuple(x.shape) == (6, 32, 32, 3)
    assert (y.numpy()[:3] < 10).all() and (y.numpy()[3:] >= 10).all()
    # MNIST is grey: copied to three equal channels.
    np.testing.assert_array_equal(x.numpy()[0, ..., 0], x.numpy()[0, ..., 2])
    with pytest.raises(ValueError, match="split"):
        data.ebpc_dataset("validation")
