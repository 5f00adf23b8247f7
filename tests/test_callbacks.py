"""kr.callbacks.ReconstructionImages: PNG grids and TensorBoard images."""

import glob

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_reversible as kr
import zoo

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _image_tags(logdir):
    tags = {}
    for path in glob.glob(f"{logdir}/events.out.tfevents.*"):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                tags.setdefault(value.tag, []).append(event.step)
    return tags


@pytest.mark.parametrize("build,shape", [
    (zoo.racecar_mnist_cnn, (28, 28, 1)),
    (zoo.racecar_mi_net, (12,)),
])
def test_writes_png_and_tensorboard_images(tmp_path, build, shape):
    model = build()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).uniform(size=(16, *shape)).astype("float32")
    callback = kr.callbacks.ReconstructionImages(
        x[:4], tmp_path / "png", every=2, tensorboard_dir=str(tmp_path / "tb"), value_range=(0, 1))
    model.fit(x, np.arange(16) % 2, epochs=4, verbose=0, callbacks=[callback])
    assert [p.rsplit("/", 1)[-1] for p in map(str, callback.written)] == [
        "reconstructions_epoch2.png", "reconstructions_epoch4.png"]
    for path in callback.written:
        with open(path, "rb") as f:
            assert f.read(8) == PNG_MAGIC
    tags = _image_tags(tmp_path / "tb")
    assert tags["reconstructions/input"] == [2, 4]
    assert tags["reconstructions/regenerated"] == [2, 4]


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="give out_dir, tensorboard_dir or both"):
        kr.callbacks.ReconstructionImages(np.zeros((2, 4)), None)
    with pytest.raises(ValueError, match="every must be >= 1, got 0"):
        kr.callbacks.ReconstructionImages(np.zeros((2, 4)), "x", every=0)
    with pytest.raises(ValueError, match=r"got shape \(2, 3, 4, 5, 6\)"):
        kr.callbacks.ReconstructionImages(np.zeros((2, 3, 4, 5, 6)), "x")
