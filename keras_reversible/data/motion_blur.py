"""Motion-blurred MNIST: the "motion blur" variant of n-MNIST, regenerated from MNIST.

The racecar paper (§5.1, appendix A.2) uses n-MNIST with motion blur
(Basu et al. 2017, "Learning sparse feature representations using
probabilistic quadtrees and deep belief nets"): 60,000 training and 10,000 test
images of 28×28, made by applying a linear motion-blur filter to MNIST.
The n-MNIST page describes that filter as emulating a linear camera motion of
5 pixels at an angle of 15 degrees, counter-clockwise. Those are the defaults
here (``DEFAULT_LENGTH = 5``, ``DEFAULT_ANGLE = 15``), quoted from the n-MNIST
description as we remember it: neither that page nor the Basu et al. paper
could be reached from this machine (no internet), so the values, and the
assumption that the filter was MATLAB's ``fspecial('motion', 5, 15)`` applied
with ``imfilter``, are not checked against the original files; pass
``length=``/``angle=`` to change them. (TFDS ``mnist_corrupted/motion_blur`` is
a different set, MNIST-C of Mu & Gilmer 2019, with random blur per image.)

``motion_blur_kernel`` re-implements MATLAB's ``fspecial('motion', len, theta)``
(an anti-aliased line segment of ``len`` pixels through the kernel centre,
``theta`` degrees counter-clockwise from the +x axis, normalised to sum 1), and
``apply_motion_blur`` filters like MATLAB's ``imfilter`` default (correlation,
zero padding, output the same size), rounding back to uint8. The result is
deterministic: no noise is added.
"""

import math
import pathlib

import numpy as np

from keras_reversible.data import cache as cache_lib
from keras_reversible.data import mnist
from keras_reversible.data.mnist import SPLITS, load_mnist_arrays
from keras_reversible.extras import import_extra

DEFAULT_LENGTH = 5
DEFAULT_ANGLE = 15.0
_EPS = math.sqrt(np.finfo(np.float64).eps)


def motion_blur_kernel(length=DEFAULT_LENGTH, angle_degrees=DEFAULT_ANGLE):
    """A linear motion-blur kernel, as MATLAB's ``fspecial('motion', length, angle)``.

    Args:
        length: length of the motion in pixels (> 0; values below 1 act as 1).
        angle_degrees: direction of the motion, degrees counter-clockwise from
            the +x axis (rightwards) in image coordinates, i.e. with row 0 at
            the top a positive angle points up and to the right.

    Returns:
        np.ndarray: float64 2-D kernel of odd height and width, non-negative,
        summing to 1 within 1e-6 (MATLAB adds ``length**2 * sqrt(eps)`` to
        the normaliser).

    Raises:
        ValueError: ``length`` is not a positive finite number or the angle is
            not finite.

    Example:
        >>> from keras_reversible.data import motion_blur_kernel
        >>> motion_blur_kernel(5, 0).round(3).tolist()
        [[0.2, 0.2, 0.2, 0.2, 0.2]]
    """
    length, angle = float(length), float(angle_degrees)
    if not (math.isfinite(length) and length > 0):
        raise ValueError(f"length must be a positive number of pixels, got {length!r}")
    if not math.isfinite(angle):
        raise ValueError(f"angle_degrees must be finite, got {angle}")
    length = max(1.0, length)
    half = (length - 1) / 2
    phi = math.radians(angle % 180)
    cosphi, sinphi = math.cos(phi), math.sin(phi)
    xsign = 1 if cosphi >= 0 else -1
    linewdt = 1.0
    sx = math.trunc(half * cosphi + linewdt * xsign - length * _EPS)
    sy = math.trunc(half * sinphi + linewdt - length * _EPS)
    xs = np.arange(0, sx + xsign, xsign) if xsign > 0 else np.arange(0, sx - 1, -1)
    x, y = np.meshgrid(xs.astype(np.float64), np.arange(0, sy + 1, dtype=np.float64))
    dist2line = y * cosphi - x * sinphi
    rad = np.sqrt(x ** 2 + y ** 2)
    last = (rad >= half) & (np.abs(dist2line) <= linewdt)
    x2last = half - np.abs((x[last] + dist2line[last] * sinphi) / cosphi)
    dist2line[last] = np.sqrt(dist2line[last] ** 2 + x2last ** 2)
    dist2line = linewdt + _EPS - np.abs(dist2line)
    dist2line[dist2line < 0] = 0
    # Mirror the quarter kernel through the centre: h = rot90(d, 2), then d in
    # the lower-right block (the centre pixel is shared).
    r, c = dist2line.shape
    h = np.zeros((2 * r - 1, 2 * c - 1))
    h[:r, :c] = np.rot90(dist2line, 2)
    h[r - 1:, c - 1:] = dist2line
    h = h / (h.sum() + _EPS * length * length)
    if cosphi > 0:
        h = np.flipud(h)
    return h


def apply_motion_blur(images, kernel):
    """Filters uint8 images with ``kernel`` (correlation, zero padding, same size).

    Args:
        images: uint8 array ``(H, W)`` or ``(N, H, W)``.
        kernel: 2-D filter, e.g. from ``motion_blur_kernel``.

    Returns:
        np.ndarray: uint8 array of the input's shape, values rounded and
        clipped to [0, 255].
    """
    images = np.asarray(images)
    kernel = np.asarray(kernel, np.float64)
    if kernel.ndim != 2:
        raise ValueError(f"kernel must be 2-D, got shape {kernel.shape}")
    if images.ndim not in (2, 3):
        raise ValueError(f"images must be (H, W) or (N, H, W), got shape {images.shape}")
    k = kernel if images.ndim == 2 else kernel[None]
    ndimage = import_extra("scipy.ndimage", "apply_motion_blur")
    out = ndimage.correlate(images.astype(np.float64), k, mode="constant", cval=0.0)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _params(split, length, angle):
    return {"data": "motion_blur_mnist", "split": split, "length": float(length),
            "angle_degrees": float(angle), "filter": "fspecial-motion/correlate/zero-pad/rint",
            "version": 1}


def load_motion_blur_mnist_arrays(split="train", data_dir=None, length=DEFAULT_LENGTH,
                                  angle=DEFAULT_ANGLE, cache_dir=None, source="auto"):
    """Motion-blurred MNIST (n-MNIST "motion blur" variant) as numpy arrays.

    Made from ``load_mnist_arrays(split, data_dir, source=source)`` with
    ``apply_motion_blur(x, motion_blur_kernel(length, angle))``; labels are
    MNIST's. Deterministic.

    Args:
        split: ``"train"`` (60,000) or ``"test"`` (10,000).
        data_dir, source: where the MNIST IDX files are, as for ``load_mnist_arrays``.
        length, angle: the blur, as for ``motion_blur_kernel`` (defaults:
            5 px at 15°, the n-MNIST values; see the module docstring).
        cache_dir: optional folder. If it holds ``<split>.npz`` made with the
            same length and angle (as written by this function or by
            ``python -m keras_reversible.data prepare motion_blur_mnist``), it
            is read instead of MNIST; otherwise the result is written there
            (atomically, with ``<split>.json`` naming the parameters).

    Returns:
        tuple: ``x`` uint8 ``(N, 28, 28)`` in [0, 255], ``y`` uint8 ``(N,)`` in 0..9.

    Example:
        >>> from keras_reversible.data import load_motion_blur_mnist_arrays
        >>> x, y = load_motion_blur_mnist_arrays("test")
        >>> x.shape[1:], x.dtype  # 10,000 images with the full MNIST
        ((28, 28), dtype('uint8'))
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}")
    kernel = motion_blur_kernel(length, angle)
    params = _params(split, length, angle)
    if cache_dir is not None:
        hit = cache_lib.load_cache(cache_dir, split, params)
        if hit is not None:
            return hit["x"], hit["y"]
    x, y = load_mnist_arrays(split, data_dir=data_dir, name="mnist", source=source)
    xb = apply_motion_blur(x, kernel)
    if cache_dir is not None:
        cache_lib.save_cache(pathlib.Path(cache_dir), split, params, {"x": xb, "y": y})
    return xb, y


def motion_blur_mnist_dataset(split="train", batch_size=64, data_dir=None, length=DEFAULT_LENGTH,
                              angle=DEFAULT_ANGLE, limit=None, shuffle=None, seed=0,
                              drop_remainder=False, cache_dir=None, source="auto"):
    """Motion-blurred MNIST as a batched, prefetched ``tf.data.Dataset``.

    Args:
        split, data_dir, length, angle, cache_dir, source: as for
            ``load_motion_blur_mnist_arrays``.
        batch_size, limit, shuffle, seed, drop_remainder: as for ``mnist_dataset``.

    Returns:
        tf.data.Dataset: ``(x, y)``; ``x`` float32 ``(B, 28, 28, 1)`` in [0, 1]
        (pixels / 255, as ``mnist_dataset``), ``y`` int32 ``(B,)``.
    """
    mnist._check_limit(limit)
    x, y = load_motion_blur_mnist_arrays(split, data_dir=data_dir, length=length, angle=angle,
                                         cache_dir=cache_dir, source=source)
    return mnist.digits_dataset(x, y, split, batch_size, limit, shuffle, seed, drop_remainder)
