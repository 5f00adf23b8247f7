"""Atomic file writes: a file appears whole under its final name, or not at all.

The library's own writers (the data caches, ``callbacks.reconstruction_grid``)
write through ``atomic_path``: a temporary sibling file, flushed to disk, then
renamed into place with ``os.replace``; the model's ``save`` / ``save_weights``
through ``atomic_write`` and its ``export`` (``keras_reversible.export``)
through ``temp_sibling`` likewise.

Temporary siblings are named ``.<name>.<host>-<pid>.<random>.tmp`` (and
``.old`` for a replaced export while it is swapped out). A process killed
with ``kill -9`` cannot remove its own, so every later write of the same
path (``remove_stale_temps``) removes those whose owner process is gone
(same host, pid no longer running), restores a swapped-out ``.old`` when the
path itself is missing, and removes temporary siblings that record no owner
(written by earlier versions) once they are a day old. Temporary siblings of
running processes, and of other hosts sharing the folder, are left alone.
"""

import contextlib
import os
import re
import shutil
import socket
import tempfile
import time


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path next to ``path``; renames it there on success.

    The temporary file is ``.<name>.<host>-<pid>.<random>.tmp`` in the same
    folder (``temp_sibling``); it is flushed to disk,
    given the usual file mode and renamed with ``os.replace``, or removed
    when the block raises: a crash never leaves a half-written file under
    the final name, and a later write of the same path removes what a
    killed process left (``remove_stale_temps``).

    Example:

    ```python
    from keras_reversible.files import atomic_path

    with atomic_path("out/weights.npz") as tmp:  # "out/weights.npz" appears whole, or not at all
        np.savez(tmp, w=np.ones(3))
    ```
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    remove_stale_temps(path)
    tmp = temp_sibling(path, directory=False)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600 files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


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
