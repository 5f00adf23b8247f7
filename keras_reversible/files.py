"""Atomic file writes: a file appears whole under its final name, or not at all.

The library's own writers (the data caches, ``callbacks.reconstruction_grid``)
write through ``atomic_path``: a temporary sibling file, flushed to disk, then
renamed into place with ``os.replace``. The temporary names and the clean-up
of those that killed processes left are ``keras_reversible.export``'s
(``temp_sibling``, ``remove_stale_temps``), shared with the model's atomic
``save`` and ``export``.
"""

import contextlib
import os

from keras_reversible import export as export_lib


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path next to ``path``; renames it there on success.

    The temporary file is ``.<name>.<host>-<pid>.<random>.tmp`` in the same
    folder (``keras_reversible.export.temp_sibling``); it is flushed to disk,
    given the usual file mode and renamed with ``os.replace``, or removed
    when the block raises: a crash never leaves a half-written file under
    the final name, and a later write of the same path removes what a
    killed process left (``export.remove_stale_temps``).

    Example:

    ```python
    with atomic_path("out/fig.png") as tmp:
        fig.savefig(tmp, format="png")
    ```
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    export_lib.remove_stale_temps(path)
    tmp = export_lib.temp_sibling(path, directory=False)
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
