"""keras_reversible.data motion-blurred MNIST: the kernel, the filter, the loader and dataset."""

import json

import numpy as np
import pytest

from keras_reversible import data


@pytest.fixture(scope="module")
def mnist_dir(data_root):
    return data_root / "mnist"


@pytest.mark.parametrize("length,angle", [(5, 15), (5, 0), (5, 90), (9, 45), (7, 135), (3, -30),
                                          (1, 0), (4.5, 200)])
def test_kernel_sums_to_one_and_is_non_negative(length, angle):
    k = data.motion_blur_kernel(length, angle)
    assert k.ndim == 2 and k.shape[0] % 2 == 1 and k.shape[1] % 2 == 1
    assert (k >= 0).all()
    assert k.sum() == pytest.approx(1.0, abs=1e-6)
    # Point-symmetric through the centre: correlation == convolution.
    np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-12)


def test_kernel_matches_matlab_special_cases():
    np.testing.assert_allclose(data.motion_blur_kernel(5, 0), np.full((1, 5), 0.2), atol=1e-7)
    np.testing.assert_allclose(data.motion_blur_kernel(5, 90), np.full((5, 1), 0.2), atol=1e-7)
    k = data.motion_blur_kernel(5, 45)  # fspecial('motion', 5, 45): anti-diagonal
    assert k.shape == (5, 5)
    np.testing.assert_allclose(np.diag(k[::-1]), [0.0304, 0.1771, 0.1771, 0.1771, 0.0304],
                               atol=1e-4)
    assert data.motion_blur_kernel(1, 33).shape == (1, 1)


def test_kernel_default_is_5px_at_15_degrees():
    np.testing.assert_array_equal(data.motion_blur_kernel(), data.motion_blur_kernel(5, 15))
    assert data.motion_blur_kernel().shape == (3, 5)


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf")])
def test_kernel_rejects_bad_length(bad):
    with pytest.raises(ValueError, match="length"):
        data.motion_blur_kernel(bad, 15)


@pytest.mark.parametrize("angle", [0, 15, 30, 45, 60, 90, 120, 150])
def test_single_bright_pixel_spreads_along_the_angle(angle):
    img = np.zeros((31, 31), np.uint8)
    img[15, 15] = 255
    out = data.apply_motion_blur(img, data.motion_blur_kernel(9, angle)).astype(float)
    rows, cols = np.nonzero(out)
    w = out[rows, cols]
    dx, dy = cols - 15.0, 15.0 - rows  # y up
    cov = np.cov(np.stack([dx, dy]), aweights=w)
    evals, evecs = np.linalg.eigh(cov)
    major = evecs[:, -1]
    direction = np.degrees(np.arctan2(major[1], major[0])) % 180
    assert min(abs(direction - angle % 180), 180 - abs(direction - angle % 180)) < 6
    assert evals[-1] > 4 * evals[0]  # elongated, a line not a blob
    assert abs(out.sum() - 255) <= 0.5 * len(w) + 1  # brightness conserved up to rounding


def test_apply_motion_blur_range_dtype_and_zero_padding():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    out = data.apply_motion_blur(img, data.motion_blur_kernel())
    assert out.dtype == np.uint8 and out.shape == img.shape
    flat = np.full((28, 28), 255, np.uint8)
    out = data.apply_motion_blur(flat, data.motion_blur_kernel())
    assert out[14, 14] == 255 and out[0, 0] < 255  # zero padding darkens the border
    with pytest.raises(ValueError, match="kernel"):
        data.apply_motion_blur(img, np.ones(3))


@pytest.fixture(scope="module")
def blurred_test(mnist_dir):
    return data.load_motion_blur_mnist_arrays("test", data_dir=mnist_dir)


def test_loader_shapes_range_labels_and_determinism(mnist_dir, blurred_test):
    x, y = blurred_test
    mx, my = data.load_mnist_arrays("test", data_dir=mnist_dir)
    assert x.shape == mx.shape and x.dtype == np.uint8 and y.dtype == np.uint8
    np.testing.assert_array_equal(y, my)
    assert not np.array_equal(x, mx)
    np.testing.assert_array_equal(x[:50], data.apply_motion_blur(mx[:50], data.motion_blur_kernel()))
    x2, _ = data.load_motion_blur_mnist_arrays("test", data_dir=mnist_dir)
    np.testing.assert_array_equal(x, x2)
    # Blur lowers the high-frequency energy and keeps the mean brightness.
    assert np.abs(np.diff(x.astype(float), axis=2)).mean() < np.abs(np.diff(mx.astype(float), axis=2)).mean()
    assert abs(x.mean() - mx.mean()) < 1.0


def test_loader_cache(tmp_path, mnist_dir, blurred_test):
    x, y = data.load_motion_blur_mnist_arrays("test", data_dir=mnist_dir, cache_dir=tmp_path)
    np.testing.assert_array_equal(x, blurred_test[0])
    params = json.loads((tmp_path / "test.json").read_text())
    assert params["length"] == 5 and params["angle_degrees"] == 15
    # A cache hit does not need MNIST any more.
    x2, _ = data.load_motion_blur_mnist_arrays("test", data_dir=tmp_path / "nowhere",
                                               cache_dir=tmp_path, source="local")
    np.testing.assert_array_equal(x2, x)
    # Other parameters: the cache is not used.
    with pytest.raises(FileNotFoundError):
        data.load_motion_blur_mnist_arrays("test", data_dir=tmp_path / "nowhere", angle=30,
                                           cache_dir=tmp_path, source="local")
    assert not list(tmp_path.glob(".*tmp"))


def test_dataset_batches(mnist_dir):
    ds = data.motion_blur_mnist_dataset("test", batch_size=32, data_dir=mnist_dir, limit=100)
    batches = list(ds)
    assert [int(b[0].shape[0]) for b in batches] == [32, 32, 32, 4]
    x, y = batches[0]
    assert tuple(x.shape) == (32, 28, 28, 1) and x.dtype.name == "float32"
    assert y.dtype.name == "int32"
    assert 0.0 <= float(x.numpy().min()) and float(x.numpy().max()) <= 1.0
