"""keras_reversible.data: local MNIST and Fashion-MNIST, IDX checks, TFDS route, 12-bit task."""

import gzip
import pathlib

import numpy as np
import pytest

from keras_reversible import data
from keras_reversible.data import mnist as mnist_module

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def mnist_dir(data_root):
    return data_root / "mnist"


@pytest.fixture(scope="module")
def mnist_train(mnist_dir):
    return data.load_mnist_arrays("train", data_dir=mnist_dir)


@pytest.fixture(scope="module")
def mnist_test(mnist_dir):
    return data.load_mnist_arrays("test", data_dir=mnist_dir)


# --- local_data_dir: only data_dir= or KERAS_REVERSIBLE_DATA -----------------------------------

def test_local_data_dir_env_var(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_REVERSIBLE_DATA", str(tmp_path))
    assert data.local_data_dir() == tmp_path.resolve()
    monkeypatch.setenv("KERAS_REVERSIBLE_DATA", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="KERAS_REVERSIBLE_DATA"):
        data.local_data_dir()


def test_the_library_does_not_search_the_file_system(monkeypatch, tmp_path, mnist_dir):
    # A shared/data/mnist folder above the working directory is not found:
    # without data_dir= or KERAS_REVERSIBLE_DATA the loaders go to TFDS.
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "shared" / "data" / "mnist").symlink_to(mnist_dir)
    (tmp_path / "repo" / "sub").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "repo" / "sub")
    monkeypatch.delenv("KERAS_REVERSIBLE_DATA")
    assert data.local_data_dir() is None
    with pytest.raises(FileNotFoundError, match="KERAS_REVERSIBLE_DATA unset"):
        data.load_mnist_arrays("test", source="local")
    with pytest.raises(FileNotFoundError, match="KERAS_REVERSIBLE_DATA unset"):
        data.load_cifar_arrays("cifar10", "test", source="local")


@pytest.mark.parametrize("load", [
    lambda d: data.load_mnist_arrays("test", data_dir=d),
    lambda d: data.load_cifar_arrays("cifar10", "test", data_dir=d),
    lambda d: data.load_motion_blur_mnist_arrays("test", data_dir=d),
], ids=["mnist", "cifar10", "motion_blur_mnist"])
def test_a_data_dir_that_does_not_exist_is_an_error(tmp_path, load):
    # Not a warning and a download: the typo is named.
    with pytest.raises(FileNotFoundError, match="mnsit"):
        load(tmp_path / "mnsit")


def test_mnist_default_data_dir_is_the_env_var(mnist_test):
    x, y = data.load_mnist_arrays("test", source="local")
    np.testing.assert_array_equal(x, mnist_test[0])
    np.testing.assert_array_equal(y, mnist_test[1])


# --- local MNIST -------------------------------------------------------------------------------

@pytest.mark.parametrize("split, counts",
                         [("train", MNIST_TRAIN_COUNTS), ("test", MNIST_TEST_COUNTS)])
def test_local_mnist_official_counts(split, counts, full_data):
    x, y = data.load_mnist_arrays(split, data_dir=full_data / "mnist")
    n = sum(counts)
    assert x.shape == (n, 28, 28) and x.dtype == np.uint8
    assert y.shape == (n,) and y.dtype == np.uint8
    assert x.min() == 0 and x.max() == 255
    assert np.bincount(y, minlength=10).tolist() == counts
    # Known first labels of the official files.
    assert y[:5].tolist() == ([5, 0, 4, 1, 9] if split == "train" else [7, 2, 1, 0, 4])


def test_local_mnist_reads_the_files_it_is_given(mnist_train, mnist_test):
    for (x, y), first in ((mnist_train, [5, 0, 4, 1, 9]), (mnist_test, [7, 2, 1, 0, 4])):
        assert x.ndim == 3 and x.shape[1:] == (28, 28) and x.dtype == np.uint8
        assert y.shape == (len(x),) and y.dtype == np.uint8 and len(x) >= 1000
        assert x.min() == 0 and x.max() == 255 and set(np.unique(y)) == set(range(10))
        assert y[:5].tolist() == first  # known first labels of the official files


def test_uncompressed_idx_files_are_read_too(mnist_dir, mnist_test, tmp_path):
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / stem).write_bytes(gzip.decompress((mnist_dir / f"{stem}.gz").read_bytes()))
    x, y = data.load_mnist_arrays("test", data_dir=tmp_path, source="local")
    np.testing.assert_array_equal(x, mnist_test[0])
    np.testing.assert_array_equal(y, mnist_test[1])


def test_bad_arguments_and_missing_files(tmp_path, mnist_dir):
    with pytest.raises(ValueError, match="split"):
        data.load_mnist_arrays("validation", data_dir=tmp_path)
    with pytest.raises(ValueError, match="name"):
        data.load_mnist_arrays("test", data_dir=tmp_path, name="kmnist")
    with pytest.raises(FileNotFoundError, match="no mnist test IDX files"):
        data.load_mnist_arrays("test", data_dir=tmp_path, source="local")
    # Only the images file present: a clear error, no silent download.
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(
        (mnist_dir / "t10k-images-idx3-ubyte.gz").read_bytes())
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        data.load_mnist_arrays("test", data_dir=tmp_path)


def test_count_mismatch_names_both_files(tmp_path, mnist_dir, mnist_test):
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(
        (mnist_dir / "t10k-images-idx3-ubyte.gz").read_bytes())
    labels = bytes([0, 0, 8, 1]) + (5).to_bytes(4, "big") + bytes(5)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(labels)
    with pytest.raises(ValueError) as err:
        data.load_mnist_arrays("test", data_dir=tmp_path)
    message = str(err.value)
    assert f"{len(mnist_test[0])} images" in message and "5 labels" in message
    assert "t10k-images-idx3-ubyte.gz" in message and "t10k-labels-idx1-ubyte" in message


# --- read_idx errors ---------------------------------------------------------------------------

def _labels_idx(n):
    return bytes([0, 0, 8, 1]) + n.to_bytes(4, "big") + bytes(range(n))


def test_read_idx_small_file(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(_labels_idx(7))
    np.testing.assert_array_equal(data.read_idx(path), np.arange(7, dtype=np.uint8))
    images = tmp_path / "images-idx3-ubyte.gz"
    images.write_bytes(gzip.compress(bytes([0, 0, 8, 3]) + b"".join(
        d.to_bytes(4, "big") for d in (2, 3, 4)) + bytes(range(24))))
    x = data.read_idx(images)
    assert x.shape == (2, 3, 4) and x.dtype == np.uint8 and x[1, 2, 3] == 23


@pytest.mark.parametrize("gzipped", [False, True])
def test_read_idx_truncated(tmp_path, mnist_dir, gzipped):
    raw = gzip.decompress((mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes())
    path = tmp_path / ("cut-labels-idx1-ubyte" + (".gz" if gzipped else ""))
    cut = raw[:-100]
    path.write_bytes(gzip.compress(cut) if gzipped else cut)
    n = len(raw) - 8  # the labels after the 8-byte header
    with pytest.raises(ValueError, match=f"truncated: .* expects {n} bytes got {n - 100}") as err:
        data.read_idx(path)
    assert str(path) in str(err.value)


def test_read_idx_truncated_gzip_stream(tmp_path, mnist_dir):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes((mnist_dir / "t10k-images-idx3-ubyte.gz").read_bytes()[:50_000])
    with pytest.raises(ValueError, match="corrupt gzip") as err:
        data.read_idx(path)
    assert str(path) in str(err.value)


def test_read_idx_trailing_bytes(tmp_path):
    path = tmp_path / "long-labels-idx1-ubyte"
    path.write_bytes(_labels_idx(7) + b"xyz")
    with pytest.raises(ValueError, match="3 trailing bytes") as err:
        data.read_idx(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("head", [bytes([0, 0, 8, 2]), bytes([0, 0, 0x0D, 1]),
                                  b"\x1f\x8b\x08\x00", b"\x00"])
def test_read_idx_bad_magic(tmp_path, head):
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(head + (7).to_bytes(4, "big") + bytes(7))
    with pytest.raises(ValueError, match="bad magic number") as err:
        data.read_idx(path)
    assert str(path) in str(err.value)


def test_read_idx_not_gzip(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(_labels_idx(7))  # A valid IDX file, but not gzip.
    with pytest.raises(ValueError, match="not gzip") as err:
        data.read_idx(path)
    assert str(path) in str(err.value)


# --- mnist_dataset -----------------------------------------------------------------------------

def _first_batches(ds, n=2):
    return [(x.numpy(), y.numpy()) for x, y in ds.take(n)]


def test_mnist_dataset_batches(mnist_dir, mnist_test):
    ds = data.mnist_dataset("test", batch_size=32, data_dir=mnist_dir, limit=100)
    batches = [(x.numpy(), y.numpy()) for x, y in ds]
    assert [len(y) for _, y in batches] == [32, 32, 32, 4]
    x, y = batches[0]
    assert x.shape == (32, 28, 28, 1) and x.dtype == np.float32
    assert y.shape == (32,) and y.dtype == np.int32
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() == 1.0
    # Test split: not shuffled by default, so the order is the files' order.
    np.testing.assert_array_equal(y, mnist_test[1][:32])
    np.testing.assert_allclose(x[..., 0], mnist_test[0][:32] / 255.0, rtol=1e-6)
    dropped = data.mnist_dataset("test", batch_size=32, data_dir=mnist_dir, limit=100,
                                 drop_remainder=True)
    assert sum(1 for _ in dropped) == 3


def test_mnist_dataset_shuffle_is_deterministic(mnist_dir, mnist_train):
    def make(seed):
        return data.mnist_dataset("train", batch_size=50, data_dir=mnist_dir, limit=500, seed=seed)

    a, b, c = _first_batches(make(0)), _first_batches(make(0)), _first_batches(make(1))
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a[0][1], c[0][1])
    # Shuffled (train default), and drawn only from the first `limit` examples.
    labels = np.concatenate([y for _, y in make(0).as_numpy_iterator()])
    assert not np.array_equal(labels, mnist_train[1][:500])
    assert sorted(labels.tolist()) == sorted(mnist_train[1][:500].tolist())


# --- 12-bit MI task ----------------------------------------------------------------------------

def test_mi_sphere_split():
    (x_train, y_train), (x_test, y_test) = data.load_mi_sphere(seed=0)
    assert x_train.shape == (3277, 12) and x_test.shape == (819, 12)
    assert y_train.shape == (3277,) and y_test.shape == (819,)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int32
    x = np.concatenate([x_train, x_test])
    y = np.concatenate([y_train, y_test])
    assert set(np.unique(x)) == {0.0, 1.0} and set(np.unique(y)) == {0, 1}
    assert len(np.unique(x, axis=0)) == 4096  # Every 12-bit pattern exactly once.
    assert y.sum() == 2118


def test_mi_sphere_seeds_and_task_b():
    a0, a0_again, a1 = (data.load_mi_sphere(seed=s) for s in (0, 0, 1))
    for (x, y), (x2, y2) in zip(a0, a0_again):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(a0[0][0], a1[0][0])
    b0 = data.load_mi_sphere(seed=0, task="B")
    for (xa, ya), (xb, yb) in zip(a0, b0):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(yb, 1 - ya)
    with pytest.raises(ValueError, match="task"):
        data.load_mi_sphere(task="C")


def test_mi_sphere_dataset():
    ds = data.mi_sphere_dataset("test", batch_size=100)
    x, y = next(iter(ds))
    assert x.shape == (100, 12) and x.dtype.name == "float32" and y.dtype.name == "int32"
    np.testing.assert_array_equal(y.numpy(), data.load_mi_sphere(seed=0)[1][1][:100])
    assert sum(len(y) for _, y in data.mi_sphere_dataset("train", batch_size=1000)) == 3277


# --- Fashion-MNIST (Debian package) ------------------------------------------------------------

@pytest.mark.skipif(
    not (mnist_module.FASHION_MNIST_DEBIAN_DIR / "t10k-images-idx3-ubyte.gz").is_file(),
    reason=f"Debian package dataset-fashion-mnist is not installed (no files in "
           f"{mnist_module.FASHION_MNIST_DEBIAN_DIR}); `apt-get install dataset-fashion-mnist`")
@pytest.mark.parametrize("split, n", [("train", 6000), ("test", 1000)])
def test_fashion_mnist_local(split, n):
    x, y = data.load_mnist_arrays(split, name="fashion_mnist", source="local")
    assert x.shape == (10 * n, 28, 28) and x.dtype == np.uint8 and y.dtype == np.uint8
    assert np.bincount(y, minlength=10).tolist() == [n] * 10
    assert x.max() == 255
    mnist_x = data.load_mnist_arrays(split, source="local")[0]
    assert not np.array_equal(x[:100], mnist_x[:100])


# --- TFDS route (mocked: never touches the network) --------------------------------------------

@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_tfds_route_mocked(tmp_path, name):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=7):
        # Empty data_dir: source="auto" falls back to tfds.
        x, y = data.load_mnist_arrays("test", data_dir=tmp_path, name=name)
        assert x.shape == (7, 28, 28) and x.dtype == np.uint8
        assert y.shape == (7,) and y.dtype == np.uint8 and y.max() <= 9
        x, y = data.load_mnist_arrays("train", name=name, source="tfds")
        assert x.shape == (7, 28, 28) and y.shape == (7,)
        xb, yb = next(iter(data.mnist_dataset("train", batch_size=4, data_dir=tmp_path, name=name)))
        assert tuple(xb.shape) == (4, 28, 28, 1) and yb.dtype.name == "int32"
        assert 0.0 <= float(xb.numpy().min()) and float(xb.numpy().max()) <= 1.0


def test_package_data_file_is_embedded():
    path = pathlib.Path(data.__file__).with_name("var_u.mat")
    assert path.is_file() and path.stat().st_size == 1003
