"""EBPC ("extremely biased and poorly categorized") composite, RN paper §3.1 / table 3.

The Reversible Network Learning paper builds EBPC by pooling public data sets,
keeping every source's classes distinct (CIFAR-10 *automobile* and CIFAR-100
*vehicles* stay two classes), not rebalancing, and resizing every image to
64×64: MNIST, CIFAR-10, CIFAR-100, Stanford Dogs, a flowers set "with 101
categories", LFW faces and CUHK03 person re-identification; 3,470 classes,
271,516 training and 82,771 test images.

``ebpc_dataset`` composes such a set from ``tensorflow_datasets`` names. The
default ``EBPC_SOURCES`` are the paper's sources that TFDS has with integer
class labels: ``mnist``, ``cifar10``, ``cifar100``, ``stanford_dogs``,
``oxford_flowers102`` (102 categories; the paper's "101" is taken to be this
set). Left out: LFW (TFDS ``lfw`` labels are person-name strings and the paper
does not say which identities it kept) and CUHK03 (not in TFDS). So the class
count and sizes differ from table 3. Labels are offset per source:
source *i*'s label *c* becomes ``offsets[i] + c``, ``offsets`` being the running
sum of the sources' class counts (see ``ebpc_class_offsets``).

Not runnable on this machine: the sources must be downloaded by TFDS (several
GB); tests run it on ``tfds.testing.mock_data``.
"""

import tensorflow as tf

from keras_reversible.extras import import_extra

EBPC_SOURCES = ("mnist", "cifar10", "cifar100", "stanford_dogs", "oxford_flowers102")
# TFDS split names per source, where they differ from "train" / "test".
SPLIT_NAMES = {"oxford_flowers102": {"train": "train+validation", "test": "test"}}
IMAGE_SIZE = 64


def _tfds():
    tfds = import_extra("tensorflow_datasets", "ebpc_dataset")  # slow import

    return tfds


def ebpc_class_offsets(sources=EBPC_SOURCES, data_dir=None):
    """Label offset and class count of each source, from the TFDS metadata.

    Returns:
        tuple: ``(offsets, total)``; ``offsets`` dict name -> first label,
        ``total`` the number of classes in the composite.
    """
    tfds = _tfds()
    offsets, total = {}, 0
    for name in sources:
        if name in offsets:
            raise ValueError(f"source {name!r} is listed twice")
        label = tfds.builder(name, data_dir=data_dir).info.features["label"]
        if not hasattr(label, "num_classes"):
            raise ValueError(f"{name}: TFDS 'label' is not a ClassLabel ({type(label).__name__})")
        offsets[name] = total
        total += int(label.num_classes)
    return offsets, total


def _prepare(image, label, offset, size):
    image = tf.convert_to_tensor(image)
    if image.shape.rank == 2:
        image = image[..., None]
    image = tf.image.resize(tf.cast(image, tf.float32), (size, size), method="bilinear",
                            antialias=True)
    if image.shape[-1] == 1:  # Static in every TFDS image feature used here.
        image = tf.image.grayscale_to_rgb(image)
    image = tf.ensure_shape(tf.clip_by_value(image, 0.0, 255.0) / 255.0, (size, size, 3))
    return image, tf.cast(label, tf.int32) + offset


def ebpc_dataset(split="train", sources=EBPC_SOURCES, batch_size=128, image_size=IMAGE_SIZE,
                 shuffle=None, seed=0, drop_remainder=False, data_dir=None, shuffle_buffer=10000):
    """The EBPC-style composite as a batched, prefetched ``tf.data.Dataset``.

    Args:
        split: ``"train"`` or ``"test"`` (mapped per source by ``SPLIT_NAMES``).
        sources: TFDS names with an integer ``label`` (default ``EBPC_SOURCES``).
        batch_size: examples per batch.
        image_size: side of the square output images (paper: 64).
        shuffle: default ``split == "train"``; with a buffer of ``shuffle_buffer``.
        seed: shuffle seed.
        drop_remainder: drop the last, smaller batch.
        data_dir: TFDS data folder (default TFDS's own).

    Returns:
        tuple: ``(dataset, offsets, num_classes)``; ``dataset`` yields ``x``
        float32 ``(B, image_size, image_size, 3)`` in [0, 1] (grey images copied
        to 3 channels, bilinear resizing with antialiasing) and ``y`` int32,
        source label + the source's offset. Sources follow one another (then
        shuffled when ``shuffle``).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    tfds = _tfds()
    offsets, total = ebpc_class_offsets(sources, data_dir=data_dir)
    ds = None
    for name in sources:
        tfds_split = SPLIT_NAMES.get(name, {}).get(split, split)
        part = tfds.load(name, split=tfds_split, as_supervised=True, data_dir=data_dir)
        off = offsets[name]
        part = part.map(lambda x, y, off=off: _prepare(x, y, off, image_size),
                        num_parallel_calls=tf.data.AUTOTUNE)
        ds = part if ds is None else ds.concatenate(part)
    if shuffle is None:
        shuffle = split == "train"
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return ds.prefetch(tf.data.AUTOTUNE), offsets, total
