"""The 12-bit task of the racecar paper's mutual-information test.

``var_u.mat`` (embedded next to this module, 1 KB) is the data set of
Shwartz-Ziv & Tishby, "Opening the black box of deep neural networks via
information" (2017): ``F`` uint8 (4096, 12) holds every 12-bit pattern and
``y`` uint8 (1, 4096) its binary label. Origin: public GitHub repository
bbradt/IDNNs (a fork of ravidziv/IDNNs), ``data/var_u.mat``; see SOURCE.md.
The racecar paper (appendix A.1) trains on 80% and tests on 20% (task A) and
uses the inverted labels as task B.
"""

from importlib import resources

import numpy as np
import tensorflow as tf

from keras_reversible.extras import import_extra

TASKS = ("A", "B")


def load_mi_sphere(seed=0, task="A", train_fraction=0.8):
    """Loads the 12-bit task, split into train and test at random.

    Args:
        seed: seed of ``np.random.default_rng``; its permutation of the 4096
            patterns puts the first ``round(4096 * train_fraction)`` (3277)
            in train and the rest (819) in test.
        task: ``"A"`` (the original labels) or ``"B"`` (``y -> 1 - y``).
        train_fraction: fraction of patterns in train, in [0, 1].

    Returns:
        tuple: ``((x_train, y_train), (x_test, y_test))``; ``x`` float32
        ``(N, 12)`` with values in {0, 1}, ``y`` int32 ``(N,)`` in {0, 1}.

    Example:
        >>> from keras_reversible.data import load_mi_sphere
        >>> (x_train, y_train), (x_test, y_test) = load_mi_sphere(seed=0)
        >>> x_train.shape, x_test.shape, y_train.dtype
        ((3277, 12), (819, 12), dtype('int32'))
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if not 0.0 <= train_fraction <= 1.0:
        raise ValueError(f"train_fraction must be in [0, 1], got {train_fraction}")
    with resources.as_file(resources.files("keras_reversible.data") / "var_u.mat") as path:
        mat = import_extra("scipy.io", "load_mi_sphere (reading var_u.mat)").loadmat(path)
    x = mat["F"].astype(np.float32)
    y = mat["y"].reshape(-1).astype(np.int32)
    if x.shape != (4096, 12) or y.shape != (4096,):
        raise ValueError(f"var_u.mat: expected F (4096, 12) and y (1, 4096), "
                         f"got {mat['F'].shape} and {mat['y'].shape}")
    if task == "B":
        y = 1 - y
    order = np.random.default_rng(seed).permutation(len(x))
    n_train = round(len(x) * train_fraction)
    train, test = order[:n_train], order[n_train:]
    return (x[train], y[train]), (x[test], y[test])


def mi_sphere_dataset(split="train", batch_size=64, seed=0, task="A", train_fraction=0.8,
                      shuffle=None, drop_remainder=False):
    """One split of ``load_mi_sphere`` as a batched ``tf.data.Dataset``.

    Args:
        split: ``"train"`` or ``"test"``.
        batch_size: examples per batch.
        seed, task, train_fraction: as for ``load_mi_sphere``; ``seed`` also
            seeds the shuffle.
        shuffle: shuffle each epoch; default ``split == "train"``.
        drop_remainder: drop the last, smaller batch.

    Returns:
        tf.data.Dataset: ``(x, y)`` batches, ``x`` float32 ``(B, 12)``,
        ``y`` int32 ``(B,)``. Prefetched.

    Example:
        >>> from keras_reversible.data import mi_sphere_dataset
        >>> x, y = next(iter(mi_sphere_dataset("test", batch_size=32)))
        >>> tuple(x.shape), tuple(y.shape)
        ((32, 12), (32,))
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    train, test = load_mi_sphere(seed=seed, task=task, train_fraction=train_fraction)
    x, y = train if split == "train" else test
    if shuffle is None:
        shuffle = split == "train"
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        ds = ds.shuffle(max(len(x), 1), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
