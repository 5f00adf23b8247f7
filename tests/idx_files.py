"""Writes small MNIST-style IDX ``.gz`` files for tests of the data loaders and tools."""

import gzip

import numpy as np


def write_idx(path, array):
    """Writes ``array`` (uint8, 1-D labels or 3-D images) as a gzipped IDX file at ``path``."""
    array = np.asarray(array, np.uint8)
    magic = 0x0801 if array.ndim == 1 else 0x0803
    head = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(head + array.tobytes())
