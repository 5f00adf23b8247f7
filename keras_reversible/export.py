"""SavedModel export of a ``ReversibleModel``: forward and reverse endpoints.

The artifact is a plain TensorFlow SavedModel (``keras.export.ExportArchive``):
loading it needs neither this package nor Keras.

Endpoints (each also a serving signature):

* ``serve``: the forward pass, ``model(x, training=False)`` (also
  ``serving_default``);
* ``reconstruct``: the reverse pass back to input space, as
  ``model.reconstruct(x)``;
* ``reverse_activations``: a dict ``{"forward_m": L_m, "reverse_m": L'_m}``
  for every constrained point ``m = 1..num_constrained`` (the reverse pass
  computes them all anyway, so it costs no more than ``reconstruct``).

The archive is written to a temporary sibling folder and renamed into place,
so a failed export leaves nothing behind and an existing export is replaced
only with ``overwrite=True``, and only once the new one is complete
(``keras_reversible.files`` names the temporary siblings and removes those
that killed processes left).
"""

import os
import shutil

import keras

from keras_reversible.files import remove_stale_temps, temp_sibling

ENDPOINTS = ("serve", "reconstruct", "reverse_activations")


def _endpoints(model):
    """The three endpoint functions, each taking the model's input structure."""
    program = model.reverse_program

    def serve(x):
        return model(x, training=False)

    def reconstruct(x):
        return program.reconstruct(x, training=False)

    def reverse_activations(x):
        pairs = {}
        for m, (forward, reverse) in enumerate(program.pairs(x), start=1):
            pairs[f"forward_{m}"] = forward
            pairs[f"reverse_{m}"] = reverse
        return pairs

    fns = {"serve": serve, "reconstruct": reconstruct}
    if program.num_constrained:
        fns["reverse_activations"] = reverse_activations
    return fns


def _build_archive(model, input_signature):
    archive = keras.export.ExportArchive()
    archive.track(model)
    fns = _endpoints(model)
    for name, fn in fns.items():
        archive.add_endpoint(name, fn, input_signature)
    return archive, list(fns)


def check_overwrite(filepath, overwrite):
    """Raises ``FileExistsError`` when ``filepath`` exists and ``overwrite`` is False."""
    if os.path.lexists(os.fspath(filepath)) and not overwrite:
        raise FileExistsError(
            f"export: {os.fspath(filepath)!r} already exists; pass overwrite=True to replace it."
        )


def export_saved_model(model, filepath, *, overwrite=False, verbose=None, input_signature=None):
    """Writes ``model`` as a SavedModel with forward and reverse endpoints.

    Args:
        model: a ``ReversibleModel``.
        filepath: folder to create.
        overwrite: replace an existing ``filepath``; otherwise it is an error.
        verbose: print the path and endpoints (default True, as Keras).
        input_signature: as for ``keras.Model.export``; default the model's
            inputs with a free batch dimension.

    Returns:
        The endpoint names written.

    Raises:
        FileExistsError: ``filepath`` exists and ``overwrite`` is False.

    Temporary siblings of ``filepath`` left by a killed export are removed
    first (``remove_stale_temps``).

    Example:

    ```python
    import numpy as np
    import tensorflow as tf
    import zoo

    model = zoo.racecar_mnist_cnn()
    model.export("/tmp/mnist_cnn", overwrite=True)
    loaded = tf.saved_model.load("/tmp/mnist_cnn")  # no keras_reversible needed
    x = np.zeros((2, 28, 28, 1), "float32")
    logits, x_regen = loaded.serve(x), loaded.reconstruct(x)
    pairs = loaded.reverse_activations(x)          # {"forward_1": ..., "reverse_1": ...}
    ```
    """
    path = os.path.abspath(os.fspath(filepath))
    remove_stale_temps(path)
    check_overwrite(filepath, overwrite)
    signature = input_signature or [model.reverse_program.inputs.specs(free_batch=False, named=True)]
    archive, names = _build_archive(model, signature)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = temp_sibling(path)
    old = None
    try:
        archive.write_out(tmp, verbose=False)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp creates 0700 folders
        if os.path.lexists(path):
            old = tmp[: -len(".tmp")] + ".old"  # unique, as tmp is
            os.rename(path, old)
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not os.path.lexists(path):
            os.rename(old, path)  # put the previous export back
        raise
    if old is not None and os.path.isdir(old):
        shutil.rmtree(old)
    elif old is not None:
        os.remove(old)
    if verbose is None or verbose:
        print(f"Saved artifact at '{path}'. Endpoints: {', '.join(names)}.")
    return names
