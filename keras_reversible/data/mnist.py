"""MNIST and Fashion-MNIST from local IDX files, with a TFDS fallback.

Both data sets ship as four IDX files with the same names::

    train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz   (60,000)
    t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz     (10,000)

Default folders: MNIST ``$KERAS_REVERSIBLE_DATA/mnist``; Fashion-MNIST the
folder of Debian's ``dataset-fashion-mnist`` package
(``/usr/share/datasets/fashion-mnist``), then
``$KERAS_REVERSIBLE_DATA/fashion_mnist``. If no local files are found,
``tensorflow_datasets`` is used (it downloads on first use).
"""

import gzip
import logging
import math
import pathlib
import zlib

import numpy as np
import tensorflow as tf

from keras_reversible.data.paths import data_folders
from keras_reversible.extras import import_extra

NAMES = ("mnist", "fashion_mnist")
SPLITS = {"train": "train", "test": "t10k"}
SOURCES = ("auto", "local", "tfds")
FASHION_MNIST_DEBIAN_DIR = pathlib.Path("/usr/share/datasets/fashion-mnist")

# IDX magic number -> dimension count. Bytes: 0, 0, dtype (0x08 = ubyte), ndim.
_MAGIC = {0x00000801: 1, 0x00000803: 3}


def read_idx(path):
    """Reads an IDX file of unsigned bytes (labels or images).

    Files whose name ends in ``.gz`` are read through gzip. The header is
    checked: magic number ``0x00000801`` (1-D labels) or ``0x00000803`` (3-D
    images), dtype byte ``0x08`` (ubyte), and a payload of exactly the
    product of the header's dimensions.

    Args:
        path: path of the file, ``.gz`` or uncompressed.

    Returns:
        np.ndarray: uint8 array with the shape given in the header.

    Raises:
        ValueError: the file is not a valid IDX ubyte file (bad magic number,
            truncated, trailing bytes, not gzip or a corrupt gzip stream); the
            message names the file.

    Example:
        >>> from keras_reversible.data import local_data_dir, read_idx
        >>> y = read_idx(local_data_dir() / "mnist" / "t10k-labels-idx1-ubyte.gz")
        >>> y.ndim, y.dtype
        (1, dtype('uint8'))
    """
    path = pathlib.Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            magic = int.from_bytes(head, "big")
            if len(head) < 4 or magic not in _MAGIC:
                raise ValueError(
                    f"{path}: bad magic number {head.hex() or '(empty file)'}; an IDX ubyte "
                    "file starts with 00000801 (labels) or 00000803 (images): two zero "
                    "bytes, dtype byte 08 (ubyte), dimension count")
            ndim = _MAGIC[magic]
            dims = f.read(4 * ndim)
            if len(dims) < 4 * ndim:
                raise ValueError(f"{path}: truncated header: expected {4 * ndim} "
                                 f"dimension bytes got {len(dims)}")
            shape = tuple(int.from_bytes(dims[i:i + 4], "big") for i in range(0, 4 * ndim, 4))
            size = math.prod(shape)
            out = np.empty(size, np.uint8)
            view, got = memoryview(out), 0
            while got < size:
                n = f.readinto(view[got:])
                if not n:
                    break
                got += n
            if got < size:
                raise ValueError(f"{path}: truncated: header shape {shape} expects "
                                 f"{size} bytes got {got}")
            extra = len(f.read())
            if extra:
                raise ValueError(f"{path}: {extra} trailing bytes after the {size} "
                                 f"bytes of header shape {shape}")
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise ValueError(f"{path}: not gzip or corrupt gzip: {e}") from e
    return out.reshape(shape)


def _find(folder, stem):
    """``folder/stem.gz`` or ``folder/stem``, whichever exists, else None."""
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def _folders(name, data_dir):
    folders = data_folders(name, data_dir)
    if data_dir is None and name == "fashion_mnist":
        folders.insert(0, FASHION_MNIST_DEBIAN_DIR)
    return folders


def _load_tfds(name, split):
    tfds = import_extra("tensorflow_datasets", "loading MNIST through TFDS")  # slow import

    # Same as tfds.load(..., batch_size=-1), but batched to the split's known
    # size: batch_size=-1 falls back to batch(sys.maxsize) when TFDS lacks the
    # split sizes (as under tfds.testing.mock_data), which aborts TensorFlow.
    ds = tfds.load(name, split=split, as_supervised=True)
    n = int(ds.cardinality())
    if n > 0:
        x, y = ds.batch(n).get_single_element()
        x, y = x.numpy(), y.numpy()
    else:
        pairs = list(tfds.as_numpy(ds))
        x, y = np.stack([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    return x.reshape(len(x), 28, 28).astype(np.uint8), y.astype(np.uint8)


def load_mnist_arrays(split="train", data_dir=None, name="mnist", source="auto"):
    """Loads one split of MNIST or Fashion-MNIST as numpy arrays.

    Args:
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000).
        data_dir: folder holding the standard IDX files (``.gz`` or not); it
            must exist. If None: ``$KERAS_REVERSIBLE_DATA/mnist`` for MNIST; for
            Fashion-MNIST ``/usr/share/datasets/fashion-mnist`` (Debian package
            ``dataset-fashion-mnist``), then ``$KERAS_REVERSIBLE_DATA/fashion_mnist``.
        name: ``"mnist"`` or ``"fashion_mnist"``.
        source: ``"auto"`` reads the local files and falls back to
            ``tfds.load(name, split=split, as_supervised=True)`` when none are
            found (that downloads); ``"local"`` never uses TFDS; ``"tfds"``
            always does.

    Returns:
        tuple: ``x`` uint8 ``(N, 28, 28)``, ``y`` uint8 ``(N,)`` in 0..9.

    Raises:
        ValueError: bad argument, a bad IDX file, or images and labels that
            do not match.
        FileNotFoundError: ``data_dir`` does not exist, ``source="local"`` and
            no files, or only one of the split's two files is present.

    Example:
        >>> from keras_reversible.data import load_mnist_arrays
        >>> x, y = load_mnist_arrays("test")  # $KERAS_REVERSIBLE_DATA/mnist, else TFDS
        >>> x.shape[1:], len(x) == len(y), x.dtype
        ((28, 28), True, dtype('uint8'))
    """
    if name not in NAMES:
        raise ValueError(f"name must be one of {NAMES}, got {name!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}")
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    if source == "tfds":
        return _load_tfds(name, split)

    folders = _folders(name, data_dir)
    stems = (f"{SPLITS[split]}-images-idx3-ubyte", f"{SPLITS[split]}-labels-idx1-ubyte")
    for folder in folders:
        images, labels = (_find(folder, stem) for stem in stems)
        if images is None and labels is None:
            continue
        if images is None or labels is None:
            missing = stems[0] if images is None else stems[1]
            raise FileNotFoundError(f"{folder}: has {images or labels} but no {missing}[.gz]")
        x, y = read_idx(images), read_idx(labels)
        if x.ndim != 3 or x.shape[1:] != (28, 28) or y.ndim != 1:
            raise ValueError(f"expected 28x28 images in {images} and 1-D labels in "
                             f"{labels}, got shapes {x.shape} and {y.shape}")
        if len(x) != len(y):
            raise ValueError(f"{len(x)} images in {images} but {len(y)} labels in {labels}")
        if len(y) and y.max() > 9:
            raise ValueError(f"{labels}: labels must be 0..9, found {y.max()}")
        return x, y

    searched = ", ".join(str(f) for f in folders) or "(no data_dir, KERAS_REVERSIBLE_DATA unset)"
    if source == "local":
        raise FileNotFoundError(f"no {name} {split} IDX files in {searched}")
    logging.getLogger(__name__).warning(
        "No local %s %s files in %s; loading through tensorflow_datasets.", name, split, searched)
    return _load_tfds(name, split)


def mnist_dataset(split="train", batch_size=64, data_dir=None, name="mnist", limit=None,
                  shuffle=None, seed=0, drop_remainder=False, source="auto"):
    """MNIST or Fashion-MNIST as a batched ``tf.data.Dataset``.

    Args:
        split, data_dir, name, source: as for ``load_mnist_arrays``.
        batch_size: examples per batch.
        limit: keep only the first ``limit`` examples (before shuffling).
        shuffle: shuffle each epoch; default ``split == "train"``.
        seed: shuffle seed. The same seed gives the same order (for a given
            global TensorFlow seed, if one is set); None is not repeatable.
        drop_remainder: drop the last, smaller batch.

    Returns:
        tf.data.Dataset: ``(x, y)`` batches; ``x`` float32 ``(B, 28, 28, 1)``
        in [0, 1], ``y`` int32 ``(B,)``. Prefetched.

    Example:
        >>> from keras_reversible.data import mnist_dataset
        >>> x, y = next(iter(mnist_dataset("test", batch_size=8, limit=100)))
        >>> tuple(x.shape), x.dtype.name, tuple(y.shape), y.dtype.name
        ((8, 28, 28, 1), 'float32', (8,), 'int32')
    """
    _check_limit(limit)
    x, y = load_mnist_arrays(split, data_dir=data_dir, name=name, source=source)
    return digits_dataset(x, y, split, batch_size, limit, shuffle, seed, drop_remainder)


def _check_limit(limit):
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 or None, got {limit}")


def digits_dataset(x, y, split, batch_size, limit, shuffle, seed, drop_remainder):
    """uint8 ``(N, 28, 28)`` images and labels as the datasets above return them.

    Shared by ``mnist_dataset`` and the motion-blurred variant: ``limit``
    first, shuffling on by default for ``"train"``, then batches of float32
    ``(B, 28, 28, 1)`` in [0, 1] and int32 labels, prefetched.
    """
    _check_limit(limit)
    if limit is not None:
        x, y = x[:limit], y[:limit]
    if shuffle is None:
        shuffle = split == "train"
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        ds = ds.shuffle(max(len(x), 1), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    ds = ds.map(lambda x, y: (tf.cast(x, tf.float32)[..., None] / 255.0, tf.cast(y, tf.int32)),
                num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
