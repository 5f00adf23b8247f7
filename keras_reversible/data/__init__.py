"""Offline data loaders: MNIST, Fashion-MNIST and the 12-bit MI task.

MNIST comes from the IDX files in ``shared_data_dir()/"mnist"``,
Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package; both fall back
to ``tensorflow_datasets`` (which downloads) when no local files are found.
The 12-bit task's data is embedded in the package (``var_u.mat``).
"""

from keras_reversible.data.mi_sphere import load_mi_sphere, mi_sphere_dataset
from keras_reversible.data.mnist import load_mnist_arrays, mnist_dataset, read_idx
from keras_reversible.data.paths import shared_data_dir

__all__ = [
    "load_mi_sphere",
    "load_mnist_arrays",
    "mi_sphere_dataset",
    "mnist_dataset",
    "read_idx",
    "shared_data_dir",
]
