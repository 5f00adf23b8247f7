"""keras_reversible.data CIFAR-10/100: local .npz route, official pickles, TFDS route, datasets."""

import pickle

import numpy as np
import pytest
import tensorflow as tf

from keras_reversible import data

CIFAR10_TRAIN1_COUNTS = [1005, 974, 1032, 1016, 999, 937, 1030, 1001, 1025, 981]


@pytest.fixture(scope="module")
def cifar10_dir(data_root):
    return data_root / "cifar10"


def test_cifar10_full_training_set(full_data):
    x, y = data.load_cifar_arrays("cifar10", "train", data_dir=full_data / "cifar10",
                                  source="local")
    assert x.shape == (50000, 32, 32, 3) and x.dtype == np.uint8
    assert y.shape == (50000,) and y.dtype == np.uint8
    assert np.bincount(y, minlength=10).tolist() == [5000] * 10
    # Batch 1 first, in the official order.
    assert np.bincount(y[:10000], minlength=10).tolist() == CIFAR10_TRAIN1_COUNTS
    assert x.min() == 0 and x.max() == 255


def test_cifar10_full_test_set_and_default_dir(full_data, monkeypatch):
    monkeypatch.setenv("KERAS_REVERSIBLE_DATA", str(full_data))
    x, y = data.load_cifar_arrays("cifar10", "test", source="local")
    assert x.shape == (10000, 32, 32, 3)
    assert np.bincount(y, minlength=10).tolist() == [1000] * 10


def test_cifar10_batches_present_are_concatenated_with_a_warning(tmp_path, cifar10_dir, caplog):
    # Only batches 1 and 3 here: both are read, in order, and the log says 50,000 were expected.
    with np.load(cifar10_dir / "cifar10_data_batch_1.npz") as f:
        x, y = f["x_train"][:6], f["y_train"][:6]
    np.savez(tmp_path / "cifar10_data_batch_1.npz", x_train=x[:4], y_train=y[:4])
    np.savez(tmp_path / "cifar10_data_batch_3.npz", x_train=x[4:], y_train=y[4:])
    got_x, got_y = data.load_cifar_arrays("cifar10", "train", data_dir=tmp_path, source="local")
    np.testing.assert_array_equal(got_x, x)
    np.testing.assert_array_equal(got_y, y)
    assert "only 6 of the 50,000" in caplog.text


def test_cifar10_local_subset_reads_as_the_full_files_do(cifar10_dir):
    x, y = data.load_cifar_arrays("cifar10", "test", source="local")
    assert x.shape[1:] == (32, 32, 3) and x.dtype == np.uint8 and len(x) >= 500
    assert y.shape == (len(x),) and set(np.unique(y)) == set(range(10))
    xt, yt = data.load_cifar_arrays("cifar10", "train", data_dir=cifar10_dir, source="local")
    assert len(xt) >= 500 and len(yt) == len(xt) and xt.max() == 255


def test_cifar100_full_local_subset(full_data):
    x, y = data.load_cifar_arrays("cifar100", "test", data_dir=full_data / "cifar100",
                                  source="local")
    assert x.shape == (916, 32, 32, 3) and y.max() <= 99
    assert len(np.unique(y)) == 100
    _, yc = data.load_cifar_arrays("cifar100", "test", data_dir=full_data / "cifar100",
                                   source="local", label_mode="coarse")
    assert np.bincount(yc, minlength=20)[:3].tolist() == [39, 54, 44]
    xt, yt = data.load_cifar_arrays("cifar100", "train", data_dir=full_data / "cifar100",
                                    source="local")
    assert xt.shape == (486, 32, 32, 3) and 16 not in yt


def test_cifar100_labels(data_root):
    x, y = data.load_cifar_arrays("cifar100", "test", source="local")
    _, yc = data.load_cifar_arrays("cifar100", "test", source="local", label_mode="coarse")
    assert len(x) == len(y) == len(yc) >= 100 and y.max() <= 99 and yc.max() <= 19
    with pytest.raises(ValueError, match="label_mode"):
        data.load_cifar_arrays("cifar10", "test", label_mode="coarse")


def test_bad_arguments_and_missing_files(tmp_path):
    with pytest.raises(ValueError, match="name"):
        data.load_cifar_arrays("cifar1000")
    with pytest.raises(ValueError, match="split"):
        data.load_cifar_arrays("cifar10", "val")
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        data.load_cifar_arrays("cifar10", "test", data_dir=tmp_path, source="local")


def _write_batch(path, images, labels, cifar100=False, coarse=None):
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    d = {b"batch_label": b"testing batch 1 of 1", b"data": rows,
         b"filenames": [b"x_%d.png" % i for i in range(len(images))]}
    if cifar100:
        d[b"fine_labels"] = list(labels)
        d[b"coarse_labels"] = list(coarse)
    else:
        d[b"labels"] = list(labels)
    with open(path, "wb") as f:
        pickle.dump(d, f, protocol=2)


def test_pickle_route_official_format(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    xs, ys = [], []
    for i in range(1, 6):
        x = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
        y = rng.integers(0, 10, 3)
        _write_batch(folder / f"data_batch_{i}", x, y)
        xs.append(x)
        ys.append(y)
    xt = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    _write_batch(folder / "test_batch", xt, [0, 1, 2, 9])
    x, y = data.load_cifar_arrays("cifar10", "train", data_dir=tmp_path, source="local")
    np.testing.assert_array_equal(x, np.concatenate(xs))
    np.testing.assert_array_equal(y, np.concatenate(ys))
    # data_dir may also be the batches folder itself.
    x, y = data.load_cifar_arrays("cifar10", "test", data_dir=folder, source="local")
    np.testing.assert_array_equal(x, xt)
    assert y.tolist() == [0, 1, 2, 9]


def test_pickle_route_cifar100_and_corrupt_file(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    x = np.arange(2 * 32 * 32 * 3, dtype=np.uint32).reshape(2, 32, 32, 3).astype(np.uint8)
    _write_batch(folder / "test", x, [42, 99], cifar100=True, coarse=[3, 19])
    got, y = data.load_cifar_arrays("cifar100", "test", data_dir=tmp_path, source="local")
    np.testing.assert_array_equal(got, x)
    assert y.tolist() == [42, 99]
    _, yc = data.load_cifar_arrays("cifar100", "test", data_dir=tmp_path, label_mode="coarse")
    assert yc.tolist() == [3, 19]
    (folder / "train").write_bytes(b"\x80\x02garbage")
    with pytest.raises(ValueError, match="cifar-100-python/train"):
        data.load_cifar_arrays("cifar100", "train", data_dir=tmp_path, source="local")


def test_select_classes_remaps():
    x = np.arange(10)
    y = np.array([5, 0, 9, 5, 7, 1, 9, 2, 6, 8])
    xs, ys = data.select_classes(x, y, [9, 5])
    assert xs.tolist() == [0, 2, 3, 6] and ys.tolist() == [1, 0, 1, 0]
    with pytest.raises(ValueError, match="distinct"):
        data.select_classes(x, y, [1, 1])


def test_task_split_dataset(cifar10_dir):
    _, raw = data.load_cifar_arrays("cifar10", "test", data_dir=cifar10_dir)
    ds = data.cifar_dataset("cifar10", "test", batch_size=500, data_dir=cifar10_dir,
                            classes=[5, 6, 7, 8, 9], source="local")
    ys = np.concatenate([y.numpy() for _, y in ds])
    assert np.bincount(ys).tolist() == np.bincount(raw, minlength=10)[5:].tolist()


def test_normalisation_divides_by_channel_means(cifar10_dir):
    ds = data.cifar_dataset("cifar10", "test", batch_size=10000, data_dir=cifar10_dir,
                            source="local")
    x, y = next(iter(ds))
    assert tuple(x.shape[1:]) == (32, 32, 3) and x.dtype == tf.float32 and y.dtype == tf.int32
    raw, _ = data.load_cifar_arrays("cifar10", "test", data_dir=cifar10_dir)
    expected = raw.astype(np.float32) / 255 / np.array(data.CHANNEL_MEANS["cifar10"], np.float32)
    np.testing.assert_allclose(x.numpy(), expected, rtol=1e-6)
    # The test set's channel means, in these units, are close to 1 (less close
    # for the 500 images of tests/data).
    np.testing.assert_allclose(x.numpy().mean(axis=(0, 1, 2)), 1.0,
                               atol=0.02 if len(x) == 10000 else 0.06)
    unit = next(iter(data.cifar_dataset("cifar10", "test", batch_size=8, data_dir=cifar10_dir,
                                        normalization="unit")))[0].numpy()
    assert 0.0 <= unit.min() and unit.max() <= 1.0


def test_augmentation_keeps_shapes_and_changes_pixels(cifar10_dir):
    kw = dict(name="cifar10", split="test", batch_size=64, data_dir=cifar10_dir, limit=64,
              shuffle=False, normalization="none")
    plain = next(iter(data.cifar_dataset(augment=False, **kw)))
    aug = next(iter(data.cifar_dataset(augment=True, **kw)))
    assert aug[0].shape == plain[0].shape == (64, 32, 32, 3)
    np.testing.assert_array_equal(aug[1].numpy(), plain[1].numpy())
    changed = np.any(aug[0].numpy() != plain[0].numpy(), axis=(1, 2, 3))
    assert changed.mean() > 0.5
    # A crop of the zero-padded image: pixel values stay in range.
    assert aug[0].numpy().min() >= 0 and aug[0].numpy().max() <= 255


def test_train_defaults_shuffle_and_augment(cifar10_dir):
    ds = data.cifar_dataset("cifar10", "train", batch_size=16, data_dir=cifar10_dir, limit=32)
    batches = list(ds)
    assert [int(b[0].shape[0]) for b in batches] == [16, 16]


def test_tfds_route_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=5):
        x, y = data.load_cifar_arrays("cifar10", "train", source="tfds")
        assert x.shape == (5, 32, 32, 3) and x.dtype == np.uint8 and y.max() <= 9
        x, yc = data.load_cifar_arrays("cifar100", "test", source="tfds", label_mode="coarse")
        assert x.shape == (5, 32, 32, 3) and yc.max() <= 19
        ds = data.cifar_dataset("cifar100", "test", batch_size=5, source="tfds")
        xb, yb = next(iter(ds))
        assert tuple(xb.shape) == (5, 32, 32, 3) and yb.dtype == tf.int32


def test_augmentation_is_seeded_and_varies_per_epoch(cifar10_dir):
    kw = dict(name="cifar10", split="test", batch_size=32, data_dir=cifar10_dir, limit=32,
              shuffle=False, augment=True, normalization="none")
    ds = data.cifar_dataset(seed=3, **kw)
    first = next(iter(ds))[0].numpy()
    second = next(iter(ds))[0].numpy()
    again = next(iter(data.cifar_dataset(seed=3, **kw)))[0].numpy()
    np.testing.assert_array_equal(first, again)
    assert np.any(first != second)
    other = next(iter(data.cifar_dataset(seed=4, **kw)))[0].numpy()
    assert np.any(first != other)
