"""Offline data loaders: MNIST, Fashion-MNIST, motion-blurred MNIST, CIFAR, smoke, EBPC, the MI task.

Local files are read from the folder passed as ``data_dir=``, else from the
data set's subfolder of ``$KERAS_REVERSIBLE_DATA`` (``local_data_dir()``); the
library searches nowhere else. MNIST comes from the four IDX files,
Fashion-MNIST also from Debian's ``dataset-fashion-mnist`` package; without
local files both fall back to ``tensorflow_datasets`` (which downloads).
Motion-blurred MNIST (n-MNIST variant) is regenerated from MNIST. CIFAR-10/100
read prepared ``.npz``, the official python pickles or the project's ``.npz``
files, else TFDS. Smoke plumes are simulated with phiflow and cached.
EBPC is composed from TFDS names (downloads). The 12-bit task's data is
embedded in the package (``var_u.mat``). ``python -m keras_reversible.data
prepare NAME --source PATH`` turns local files into the loaders' folders.
"""

from keras_reversible.data.cifar import (
    CHANNEL_MEANS,
    cifar_dataset,
    load_cifar_arrays,
    normalize_cifar,
    read_cifar_pickle,
    select_classes,
)
from keras_reversible.data.ebpc import EBPC_SOURCES, ebpc_class_offsets, ebpc_dataset
from keras_reversible.data.mi_sphere import load_mi_sphere, mi_sphere_dataset
from keras_reversible.data.mnist import load_mnist_arrays, mnist_dataset, read_idx
from keras_reversible.data.motion_blur import (
    apply_motion_blur,
    load_motion_blur_mnist_arrays,
    motion_blur_kernel,
    motion_blur_mnist_dataset,
)
from keras_reversible.data.paths import local_data_dir
from keras_reversible.data.smoke import (
    downsample_frames,
    load_smoke_arrays,
    smoke_dataset,
    smoke_parameters,
)

__all__ = [
    "CHANNEL_MEANS",
    "EBPC_SOURCES",
    "apply_motion_blur",
    "cifar_dataset",
    "downsample_frames",
    "ebpc_class_offsets",
    "ebpc_dataset",
    "load_cifar_arrays",
    "load_mi_sphere",
    "load_mnist_arrays",
    "local_data_dir",
    "load_motion_blur_mnist_arrays",
    "load_smoke_arrays",
    "mi_sphere_dataset",
    "mnist_dataset",
    "motion_blur_kernel",
    "motion_blur_mnist_dataset",
    "normalize_cifar",
    "read_cifar_pickle",
    "read_idx",
    "select_classes",
    "smoke_dataset",
    "smoke_parameters",
]
