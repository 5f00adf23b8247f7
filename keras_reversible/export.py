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
only with ``overwrite=True``, and only once the new one is complete.

Temporary siblings are named ``.<name>.<host>-<pid>.<random>.tmp`` (and
``.old`` for a replaced export while it is swapped out). A process killed
with ``kill -9`` cannot remove its own, so every later write of the same
path (``remove_stale_temps``) removes those whose owner process is gone
(same host, pid no longer running), restores a swapped-out ``.old`` when the
path itself is missing, and removes temporary siblings that record no owner
(written by earlier versions) once they are a day old. Temporary siblings of
running processes, and of other hosts sharing the folder, are left alone.
"""

import os
import re
import shutil
import socket
import tempfile
import time

import keras

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


# Temporary siblings without an owner (earlier versions) are removed after this.
UNOWNED_TEMP_AGE_S = 24 * 3600


def _host():
    return re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname()) or "host"


def temp_sibling(path, directory=True):
    """Creates a temporary folder (or empty file) beside ``path``, owned by this process.

    Args:
        path: the final path.
        directory: a folder (``tempfile.mkdtemp``) or a file (``mkstemp``).

    Returns:
        The temporary path, ``.<name>.<host>-<pid>.<random>.tmp``.
    """
    parent, base = os.path.split(os.path.abspath(path))
    prefix = f".{base}.{_host()}-{os.getpid()}."
    if directory:
        return tempfile.mkdtemp(dir=parent, prefix=prefix, suffix=".tmp")
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=prefix, suffix=".tmp")
    os.close(fd)
    return tmp


def _running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


def remove_stale_temps(path):
    """Removes the temporary siblings of ``path`` that killed writers left.

    See the module docstring for which ones count as stale.

    Returns:
        The paths removed (or, for a restored ``.old``, moved back to ``path``).
    """
    parent, base = os.path.split(os.path.abspath(path))
    owned = re.compile(re.escape(f".{base}.") + r"(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)"
                       r"\.[A-Za-z0-9_]+\.(?P<kind>tmp|old)$")
    unowned = re.compile(re.escape(f".{base}.") + r"[A-Za-z0-9_]+\.(tmp|old)$")
    try:
        names = os.listdir(parent)
    except FileNotFoundError:
        return []
    removed = []
    for name in names:
        full = os.path.join(parent, name)
        match = owned.match(name)
        if match:
            if match["host"] != _host() or _running(int(match["pid"])):
                continue
            if match["kind"] == "old" and not os.path.lexists(path):
                os.rename(full, path)  # killed mid-swap: the previous one is back
            else:
                _remove(full)
        elif unowned.match(name):
            try:
                if time.time() - os.lstat(full).st_mtime < UNOWNED_TEMP_AGE_S:
                    continue
            except FileNotFoundError:
                continue
            _remove(full)
        else:
            continue
        removed.append(full)
    return removed


def atomic_write(path, write):
    """Calls ``write(tmp)`` and renames ``tmp`` to ``path``: never a half-written ``path``.

    ``tmp`` has ``path``'s base name (so a writer that picks its format from
    the suffix, as ``keras.Model.save`` does, sees the same name) inside a
    temporary sibling folder (``temp_sibling``); stale temporary siblings of
    ``path`` are removed first (``remove_stale_temps``).

    Args:
        path: the final file.
        write: ``write(tmp)`` writes the file ``tmp``.

    Returns:
        What ``write`` returned.
    """
    path = os.path.abspath(os.fspath(path))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    remove_stale_temps(path)
    tmp_dir = temp_sibling(path)
    tmp = os.path.join(tmp_dir, os.path.basename(path))
    try:
        result = write(tmp)
        if os.path.isfile(tmp):
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return result


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
