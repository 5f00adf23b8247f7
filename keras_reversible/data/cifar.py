"""CIFAR-10 and CIFAR-100: local files (official pickles, project .npz) or TFDS.

Where the images come from, tried in this order for ``source="auto"``:

1. a folder prepared by ``python -m keras_reversible.data prepare cifar10|cifar100``:
   ``<split>.npz`` with ``x`` uint8 ``(N, 32, 32, 3)``, ``y`` (and for
   CIFAR-100 ``y_coarse``);
2. the official python version: ``cifar-10-batches-py/`` (``data_batch_1`` ..
   ``data_batch_5``, ``test_batch``) or ``cifar-100-python/`` (``train``,
   ``test``), either as a subfolder of ``data_dir`` or ``data_dir`` itself.
   These are Python pickles: only read files you trust;
3. the project's offline arrays: ``cifar10_data_batch_1.npz`` ..
   ``cifar10_data_batch_5.npz`` (the five CIFAR-10 training batches, 10,000
   each; all that are present are used, in order) and ``cifar10_test.npz`` (the
   test set), ``cifar100_subset.npz`` (the first 486 train / 916 test images);
4. ``tensorflow_datasets`` (``tfds.load("cifar10")`` / ``"cifar100"``), which
   downloads on first use (only when no local files were found).

Normalisation follows Reversible Network Learning §3.1: "all images ... are
normalized by dividing the channel-wise expectation values". Read here as
``x / 255 / mean_c`` with ``mean_c`` the per-channel mean of the full training
set in [0, 1] units, so each channel has mean 1 over the training set. The
means are fixed constants (``CHANNEL_MEANS``) so that every subset is scaled
alike: CIFAR-10 (0.4914, 0.4822, 0.4465), recomputed over all 50,000 training
images for shared/data/cifar10/SOURCE.md; CIFAR-100 (0.5071, 0.4865, 0.4409),
the widely published values (not recomputable here: only 486 training images
are local).
"""

import logging
import pathlib
import pickle

import numpy as np
import tensorflow as tf

from keras_reversible.data.paths import data_folders
from keras_reversible.extras import import_extra

NAMES = ("cifar10", "cifar100")
SPLITS = ("train", "test")
SOURCES = ("auto", "local", "tfds")
NORMALIZATIONS = ("channel_mean", "unit", "none")
LABEL_MODES = ("fine", "coarse")
CHANNEL_MEANS = {
    "cifar10": (0.4914, 0.4822, 0.4465),
    "cifar100": (0.5071, 0.4865, 0.4409),
}
NUM_CLASSES = {("cifar10", "fine"): 10, ("cifar100", "fine"): 100, ("cifar100", "coarse"): 20}
PICKLE_DIRS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
PICKLE_FILES = {
    ("cifar10", "train"): tuple(f"data_batch_{i}" for i in range(1, 6)),
    ("cifar10", "test"): ("test_batch",),
    ("cifar100", "train"): ("train",),
    ("cifar100", "test"): ("test",),
}
_SHARED_NPZ = {
    ("cifar10", "train"): (tuple(f"cifar10_data_batch_{i}.npz" for i in range(1, 6)),
                           "x_train", "y_train", None),
    ("cifar10", "test"): (("cifar10_test.npz",), "x_test", "y_test", None),
    ("cifar100", "train"): (("cifar100_subset.npz",), "x_train", "y_train_fine",
                            "y_train_coarse"),
    ("cifar100", "test"): (("cifar100_subset.npz",), "x_test", "y_test_fine", "y_test_coarse"),
}


def _check_args(name, split, source, label_mode):
    if name not in NAMES:
        raise ValueError(f"name must be one of {NAMES}, got {name!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    if label_mode not in LABEL_MODES or (name, label_mode) not in NUM_CLASSES:
        raise ValueError(f"label_mode for {name} must be one of "
                         f"{[m for n, m in NUM_CLASSES if n == name]}, got {label_mode!r}")


def read_cifar_pickle(path, name="cifar10"):
    """Reads one official CIFAR python batch (``data_batch_k``, ``test_batch``, ``train``, ``test``).

    Args:
        path: the pickle file. It is unpickled: only read files you trust.
        name: ``"cifar10"`` (key ``labels``) or ``"cifar100"`` (``fine_labels``,
            ``coarse_labels``).

    Returns:
        dict: ``x`` uint8 ``(N, 32, 32, 3)`` (channels-last RGB), ``y`` uint8
        ``(N,)`` (fine labels), and for CIFAR-100 ``y_coarse``.

    Raises:
        ValueError: the file is not a CIFAR pickle of that kind (message names it).
    """
    path = pathlib.Path(path)
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError,
            TypeError, ValueError) as e:
        raise ValueError(f"{path}: not a readable CIFAR python pickle: {e!r}") from e
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(d).__name__}")
    d = {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}
    label_key = "labels" if name == "cifar10" else "fine_labels"
    if "data" not in d or label_key not in d:
        raise ValueError(f"{path}: a {name} batch needs keys 'data' and {label_key!r}, "
                         f"found {sorted(d)}")
    data = np.asarray(d["data"], dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"{path}: 'data' must be (N, 3072) uint8, got shape {data.shape}")
    out = {"x": data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(),
           "y": np.asarray(d[label_key], dtype=np.uint8)}
    if name == "cifar100":
        out["y_coarse"] = np.asarray(d.get("coarse_labels", []), dtype=np.uint8)
    if len(out["y"]) != len(out["x"]):
        raise ValueError(f"{path}: {len(out['x'])} images but {len(out['y'])} labels")
    return out


def _concat(parts):
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _read_local(folder, name, split):
    """(arrays, description) from ``folder``, or None when it has none of the known files."""
    folder = pathlib.Path(folder)
    prepared = folder / f"{split}.npz"
    if prepared.is_file():
        try:
            with np.load(prepared, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files if k in ("x", "y", "y_coarse")}
        except (OSError, ValueError, EOFError) as e:
            raise ValueError(f"{prepared}: not a readable .npz: {e}") from e
        if "x" not in arrays or "y" not in arrays:
            raise ValueError(f"{prepared}: needs arrays 'x' and 'y', found {sorted(arrays)}")
        return arrays, str(prepared)
    for pdir in (folder / PICKLE_DIRS[name], folder):
        files = [pdir / n for n in PICKLE_FILES[(name, split)]]
        present = [p for p in files if p.is_file()]
        if present:
            if len(present) < len(files):
                missing = [p.name for p in files if not p.is_file()]
                logging.getLogger(__name__).warning(
                    "%s: %s %s files missing (%s); using the %d present.", pdir, name, split,
                    ", ".join(missing), len(present))
            return _concat([read_cifar_pickle(p, name) for p in present]), str(pdir)
    fnames, xk, yk, ck = _SHARED_NPZ[(name, split)]
    present = [folder / f for f in fnames if (folder / f).is_file()]
    if not present:
        return None
    return _concat([_read_npz(f, xk, yk, ck) for f in present]), ", ".join(map(str, present))


def _read_npz(npz, xk, yk, ck):
    try:
        with np.load(npz, allow_pickle=False) as f:
            arrays = {"x": f[xk], "y": f[yk]}
            if ck is not None:
                arrays["y_coarse"] = f[ck]
    except KeyError as e:
        raise ValueError(f"{npz}: missing array {e}") from e
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(f"{npz}: not a readable .npz: {e}") from e
    return arrays


def _load_tfds(name, split, label_mode, data_dir=None):
    tfds = import_extra("tensorflow_datasets", "loading CIFAR through TFDS")  # slow import

    ds = tfds.load(name, split=split, data_dir=data_dir)
    key = "coarse_label" if label_mode == "coarse" else "label"
    xs, ys = [], []
    for ex in tfds.as_numpy(ds):
        xs.append(ex["image"])
        ys.append(ex[key])
    x = np.stack(xs).astype(np.uint8) if xs else np.zeros((0, 32, 32, 3), np.uint8)
    return x, np.asarray(ys, dtype=np.uint8)


def load_cifar_arrays(name="cifar10", split="train", data_dir=None, source="auto",
                      label_mode="fine"):
    """Loads one split of CIFAR-10 or CIFAR-100 as numpy arrays.

    Args:
        name: ``"cifar10"`` or ``"cifar100"``.
        split: ``"train"`` or ``"test"``.
        data_dir: folder with a prepared ``<split>.npz``, the official python
            pickles (``cifar-10-batches-py/`` / ``cifar-100-python/`` or their
            contents) or the project's .npz files; it must exist. Default
            ``$KERAS_REVERSIBLE_DATA/<name>``. See the module docstring for the order.
        source: ``"auto"`` (local, else TFDS, which downloads), ``"local"``
            (never TFDS), ``"tfds"`` (always ``tfds.load(name, split=split)``).
        label_mode: ``"fine"`` or, for CIFAR-100 only, ``"coarse"`` (20 superclasses).

    Returns:
        tuple: ``x`` uint8 ``(N, 32, 32, 3)`` RGB, ``y`` uint8 ``(N,)``. With
        the project's offline data: CIFAR-10 train 50,000 (fewer, with a
        warning, when not all five batches are present), test 10,000;
        CIFAR-100 train 486, test 916.

    Raises:
        ValueError: bad argument or unreadable file (the message names it).
        FileNotFoundError: ``data_dir`` does not exist, or ``source="local"``
            and no files found.

    Example:
        >>> from keras_reversible.data import load_cifar_arrays
        >>> x, y = load_cifar_arrays("cifar10", "test", source="local")
        >>> x.shape[1:], x.dtype, int(y.max())
        ((32, 32, 3), dtype('uint8'), 9)
    """
    _check_args(name, split, source, label_mode)
    if source == "tfds":
        return _load_tfds(name, split, label_mode)
    folders = data_folders(name, data_dir)
    for folder in folders:
        found = _read_local(folder, name, split)
        if found is None:
            continue
        arrays, where = found
        x = arrays["x"]
        y = arrays["y_coarse"] if label_mode == "coarse" else arrays["y"]
        if x.ndim != 4 or x.shape[1:] != (32, 32, 3) or x.dtype != np.uint8:
            raise ValueError(f"{where}: images must be uint8 (N, 32, 32, 3), got "
                             f"{x.dtype} {x.shape}")
        if y.ndim != 1 or len(y) != len(x):
            raise ValueError(f"{where}: {len(x)} images but labels of shape {y.shape}")
        n_classes = NUM_CLASSES[(name, label_mode)]
        if len(y) and int(y.max()) >= n_classes:
            raise ValueError(f"{where}: labels must be 0..{n_classes - 1}, found {int(y.max())}")
        if name == "cifar10" and split == "train" and len(x) < 50000:
            logging.getLogger(__name__).warning(
                "%s: only %d of the 50,000 CIFAR-10 training images are local.", where, len(x))
        return x, y.astype(np.uint8)
    searched = ", ".join(str(f) for f in folders) or "(no data_dir, KERAS_REVERSIBLE_DATA unset)"
    if source == "local":
        raise FileNotFoundError(f"no {name} {split} files in {searched}: expected {split}.npz, "
                                f"{PICKLE_DIRS[name]}/ or the project's .npz files")
    logging.getLogger(__name__).warning(
        "No local %s %s files in %s; loading through tensorflow_datasets.", name, split, searched)
    return _load_tfds(name, split, label_mode)


def select_classes(x, y, classes):
    """Keeps the examples whose label is in ``classes``; relabels ``classes[i]`` as ``i``.

    Args:
        x, y: arrays with the same first dimension.
        classes: distinct labels, e.g. ``[5, 6, 7, 8, 9]`` (then 5 -> 0, ..., 9 -> 4).

    Returns:
        tuple: ``(x_kept, y_remapped)``, ``y`` int32, order of examples kept.
    """
    classes = [int(c) for c in classes]
    if len(set(classes)) != len(classes) or not classes:
        raise ValueError(f"classes must be a non-empty list of distinct labels, got {classes}")
    lut = np.full(max(int(np.max(y, initial=0)), max(classes)) + 1, -1, np.int64)
    lut[classes] = np.arange(len(classes))
    new = lut[np.asarray(y, np.int64)]
    keep = new >= 0
    return x[keep], new[keep].astype(np.int32)


def normalize_cifar(x, name="cifar10", normalization="channel_mean"):
    """uint8 (or float 0..255) images to float32 as the papers use them (tensor op).

    ``"channel_mean"``: ``x / 255 / CHANNEL_MEANS[name]`` (RN §3.1, see the
    module docstring); ``"unit"``: ``x / 255`` in [0, 1]; ``"none"``: float32 0..255.
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    x = tf.cast(x, tf.float32)
    if normalization == "none":
        return x
    x = x / 255.0
    if normalization == "channel_mean":
        x = x / tf.constant(CHANNEL_MEANS[name], tf.float32)
    return x


def augment_crop_flip(x, seed, padding=4):
    """Pads by ``padding`` (zeros) on each side, takes a random crop of the original
    size, and flips left-right with probability 1/2. One image ``(H, W, C)``.

    ``seed``: shape-[2] integer tensor for the stateless random ops (the same
    seed gives the same crop and flip).
    """
    seed = tf.cast(seed, tf.int64)
    shape = tf.shape(x)
    x = tf.pad(x, [[padding, padding], [padding, padding], [0, 0]])
    x = tf.image.stateless_random_crop(x, shape, seed=seed)
    return tf.image.stateless_random_flip_left_right(x, seed=seed[::-1])


def augmentation_seeds(seed):
    """A dataset of shape-[2] int64 seeds: the same sequence for the same ``seed`` on a
    first pass, a new one on every later pass (``rerandomize_each_iteration``)."""
    return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)


def cifar_dataset(name="cifar10", split="train", batch_size=128, data_dir=None, source="auto",
                  classes=None, limit=None, augment=None, shuffle=None, seed=0,
                  drop_remainder=False, normalization="channel_mean", label_mode="fine"):
    """CIFAR-10/100 as a batched, prefetched ``tf.data.Dataset`` of ``(x, y)``.

    Args:
        name, split, data_dir, source, label_mode: as for ``load_cifar_arrays``.
        batch_size: examples per batch (RN §3.1: 128 train, 100 test).
        classes: optional list of labels to keep, relabelled ``0..k-1`` in the
            given order (e.g. ``[0..4]`` as task A, ``[5..9]`` as task B).
        limit: keep the first ``limit`` examples (after the class selection).
        augment: pad 4 + random 32×32 crop + random horizontal flip; default
            ``split == "train"``. Applied before normalisation (the zero padding
            is black in pixel space).
        shuffle: default ``split == "train"``.
        seed: seeds the shuffle and the augmentation: the first pass over the
            data is repeatable, later passes (epochs) draw new crops and flips.
        drop_remainder: drop the last, smaller batch.
        normalization: ``"channel_mean"`` (default, RN §3.1), ``"unit"`` or ``"none"``.

    Returns:
        tf.data.Dataset: ``x`` float32 ``(B, 32, 32, 3)``, ``y`` int32 ``(B,)``.

    Example:
        >>> from keras_reversible.data import cifar_dataset
        >>> ds = cifar_dataset("cifar10", "test", batch_size=50, classes=[0, 1], source="local")
        >>> x, y = next(iter(ds))
        >>> tuple(x.shape), int(y.numpy().max()) <= 1
        ((50, 32, 32, 3), True)
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 or None, got {limit}")
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    x, y = load_cifar_arrays(name, split, data_dir=data_dir, source=source, label_mode=label_mode)
    if classes is not None:
        x, y = select_classes(x, y, classes)
    y = y.astype(np.int32)
    if limit is not None:
        x, y = x[:limit], y[:limit]
    shuffle = split == "train" if shuffle is None else shuffle
    augment = split == "train" if augment is None else augment
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        ds = ds.shuffle(max(len(x), 1), seed=seed, reshuffle_each_iteration=True)

    if augment:
        ds = tf.data.Dataset.zip((ds, augmentation_seeds(seed)))
        ds = ds.map(lambda xy, s: (normalize_cifar(augment_crop_flip(xy[0], s), name,
                                                   normalization), xy[1]),
                    num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = ds.map(lambda x, y: (normalize_cifar(x, name, normalization), y),
                    num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return ds.prefetch(tf.data.AUTOTUNE)
