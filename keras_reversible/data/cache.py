"""Atomic on-disk array caches with their generation parameters, and progress bars.

A cache entry is ``<stem>.npz`` (the arrays, plus the parameters as the JSON
string ``__params__``) beside ``<stem>.json`` (the same parameters, for
people). Both are written to a temporary file in the target folder and then
renamed into place (``os.replace``), so a crash never leaves a half-written
file under the final name. An entry is reused only when the parameters stored
inside the ``.npz`` equal the requested ones.
"""

import hashlib
import zipfile
import json
import os
import pathlib
import shutil
import tempfile

import numpy as np

from keras_reversible.files import atomic_path

PARAMS_KEY = "__params__"


def default_cache_dir():
    """``$KERAS_HOME/datasets/keras_reversible`` (``~/.keras/...`` if unset).

    Returns:
        pathlib.Path: the folder (not created here).
    """
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return pathlib.Path(home) / "datasets" / "keras_reversible"


def canonical_params(params):
    """``params`` as canonical JSON text (sorted keys, lists for tuples)."""
    return json.dumps(json.loads(json.dumps(params)), sort_keys=True)


def params_digest(params, length=12):
    """A short sha256 hex digest of ``canonical_params(params)``."""
    return hashlib.sha256(canonical_params(params).encode()).hexdigest()[:length]


def atomic_write_bytes(path, data):
    """Writes ``data`` to ``path`` via a temporary file and ``os.replace``."""
    with atomic_path(path) as tmp:
        pathlib.Path(tmp).write_bytes(data)


def atomic_save_npz(path, **arrays):
    """``np.savez_compressed`` to ``path`` through a temporary file + rename."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)


def save_cache(folder, stem, params, arrays):
    """Writes ``folder/stem.npz`` (arrays + params) and ``folder/stem.json``, atomically.

    Returns:
        pathlib.Path: the ``.npz`` path.
    """
    folder = pathlib.Path(folder)
    text = canonical_params(params)
    npz = folder / f"{stem}.npz"
    atomic_save_npz(npz, **arrays, **{PARAMS_KEY: np.array(text)})
    atomic_write_bytes(folder / f"{stem}.json",
                       (json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n").encode())
    return npz


def load_cache(folder, stem, params):
    """The arrays of ``folder/stem.npz`` if its stored parameters equal ``params``.

    Returns:
        dict | None: name -> array (without the parameters), or None when the
        file is missing, unreadable or was made with other parameters.
    """
    npz = pathlib.Path(folder) / f"{stem}.npz"
    if not npz.is_file():
        return None
    try:
        with np.load(npz, allow_pickle=False) as f:
            if PARAMS_KEY not in f.files or str(f[PARAMS_KEY]) != canonical_params(params):
                return None
            return {k: f[k] for k in f.files if k != PARAMS_KEY}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        return None


def replace_dir(tmp_dir, final_dir):
    """Moves the finished folder ``tmp_dir`` to ``final_dir``, replacing an old one.

    The old folder is first renamed aside, so ``final_dir`` is at every moment
    either the old complete folder, absent, or the new complete folder.
    """
    tmp_dir, final_dir = pathlib.Path(tmp_dir), pathlib.Path(final_dir)
    old = None
    if final_dir.exists():
        old = pathlib.Path(tempfile.mkdtemp(dir=final_dir.parent, prefix=f".{final_dir.name}.old."))
        os.replace(final_dir, old / final_dir.name)
    os.replace(tmp_dir, final_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class Progress:
    """A ``tqdm`` bar if tqdm is installed, else ``keras.utils.Progbar``; silent if not ``enabled``."""

    def __init__(self, total, description="", enabled=True):
        self._bar, self._kind = None, None
        if not enabled:
            return
        try:
            from tqdm.auto import tqdm

            self._bar, self._kind = tqdm(total=total, desc=description, unit="step"), "tqdm"
        except ImportError:  # pragma: no cover - tqdm is in requirements.lock
            import keras

            if description:
                print(description)
            self._bar, self._kind = keras.utils.Progbar(total), "keras"

    def update(self, n=1):
        if self._kind == "tqdm":
            self._bar.update(n)
        elif self._kind == "keras":
            self._bar.add(n)

    def close(self):
        if self._kind == "tqdm":
            self._bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
