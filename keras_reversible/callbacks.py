"""Keras callbacks of the package."""

import os

import keras
import numpy as np
import tensorflow as tf

from keras_reversible import files
from keras_reversible.extras import import_extra


def _as_images(x):
    """(N, H, W, C) float images in [0, 1]; vectors become 1-row images."""
    x = np.asarray(x, dtype="float32")
    if x.ndim == 2:
        x = x[:, None, :, None]
    elif x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(
            "ReconstructionImages: inputs must be vectors (N, D) or images "
            f"(N, H, W[, 1 or 3]); got shape {x.shape}."
        )
    return x


def reconstruction_grid(path, inputs, regenerated, title, value_range=None):
    """Writes a two-row PNG: inputs on top, their regenerated inputs below.

    Args:
        path: PNG file to write (atomically).
        inputs: (N, ...) inputs.
        regenerated: (N, ...) the model's ``reconstruct(inputs)``.
        title: figure title.
        value_range: ``(low, high)`` of the colour scale; default the
            inputs' range.
    """
    import_extra("matplotlib", "reconstruction_grid").use("Agg")
    plt = import_extra("matplotlib.pyplot", "reconstruction_grid")

    top, bottom = _as_images(inputs), _as_images(regenerated)
    low, high = value_range or (float(top.min()), float(top.max()))
    n = len(top)
    fig, axes = plt.subplots(2, n, figsize=(1.1 * n + 0.6, 2.6), squeeze=False)
    for i in range(n):
        for row, images in enumerate((top, bottom)):
            ax = axes[row, i]
            image = np.clip(images[i], low, high)
            if image.shape[-1] == 1:
                ax.imshow(image[..., 0], cmap="gray", vmin=low, vmax=high, aspect="auto")
            else:
                ax.imshow((image - low) / max(high - low, 1e-12), aspect="auto")
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("input", fontsize=8)
    axes[1, 0].set_ylabel("regenerated", fontsize=8)
    fig.suptitle(title, fontsize=9)
    with files.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png", bbox_inches="tight")
    plt.close(fig)


class ReconstructionImages(keras.callbacks.Callback):
    """Writes inputs vs regenerated inputs every ``every`` epochs.

    Each time, a PNG grid ``<out_dir>/<prefix>_epoch<k>.png`` (inputs on top,
    ``model.reconstruct(inputs)`` below) and, when ``tensorboard_dir`` is
    given, image summaries ``<prefix>/input`` and ``<prefix>/regenerated``.
    Works for images ``(N, H, W, C)`` and for vectors ``(N, D)``, shown as
    one-row images.

    Args:
        inputs: a small batch of inputs (numpy), e.g. 8 test images.
        out_dir: folder of the PNGs; None for TensorBoard only.
        every: period in epochs.
        tensorboard_dir: log folder of TensorBoard image summaries, or None.
        prefix: file and summary name prefix.
        value_range: ``(low, high)`` display range; default the inputs'.

    Example:

    ```python
    model = zoo.racecar_mnist_cnn()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).uniform(size=(32, 28, 28, 1)).astype("float32")
    callback = kr.callbacks.ReconstructionImages(x[:8], "runs/mnist/images", every=1)
    model.fit(x, np.arange(32) % 10, epochs=1, verbose=0, callbacks=[callback])
    ```
    """

    def __init__(self, inputs, out_dir, every=1, tensorboard_dir=None,
                 prefix="reconstructions", value_range=None):
        super().__init__()
        if out_dir is None and tensorboard_dir is None:
            raise ValueError("ReconstructionImages: give out_dir, tensorboard_dir or both.")
        if int(every) < 1:
            raise ValueError(f"ReconstructionImages: every must be >= 1, got {every!r}.")
        self.inputs = np.asarray(inputs)
        _as_images(self.inputs)  # fail early on an unusable shape
        self.out_dir, self.every = out_dir, int(every)
        self.tensorboard_dir, self.prefix = tensorboard_dir, prefix
        self.value_range = value_range
        self.written = []
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        done = epoch + 1
        if done % self.every:
            return
        regenerated = self.model.reconstruct(self.inputs)
        if self.out_dir is not None:
            path = os.path.join(self.out_dir, f"{self.prefix}_epoch{done}.png")
            reconstruction_grid(path, self.inputs, regenerated,
                                f"{self.model.name}: inputs and regenerated inputs, epoch {done}",
                                self.value_range)
            self.written.append(path)
        if self.tensorboard_dir is not None:
            if self._writer is None:
                self._writer = tf.summary.create_file_writer(self.tensorboard_dir)
            low, high = self.value_range or (float(self.inputs.min()), float(self.inputs.max()))
            scale = lambda v: np.clip((_as_images(v) - low) / max(high - low, 1e-12), 0, 1)  # noqa: E731
            with self._writer.as_default():
                tf.summary.image(f"{self.prefix}/input", scale(self.inputs), step=done,
                                 max_outputs=len(self.inputs))
                tf.summary.image(f"{self.prefix}/regenerated", scale(regenerated), step=done,
                                 max_outputs=len(self.inputs))
            self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
