"""Where the loaders look for local data: an explicit folder or ``KERAS_REVERSIBLE_DATA``.

The library never searches the file system for data. A loader reads the
folder passed as ``data_dir=``; without one, the ``<name>`` subfolder of
``$KERAS_REVERSIBLE_DATA``; without that, ``tensorflow_datasets`` (which
downloads and caches, as a user with internet expects).
"""

import os
import pathlib

ENV_VAR = "KERAS_REVERSIBLE_DATA"


def local_data_dir():
    """The folder named by ``KERAS_REVERSIBLE_DATA``, or None when it is unset.

    The folder holds one subfolder per data set (``mnist/``, ``cifar10/``,
    ``cifar100/``, ...), laid out as the loaders' docstrings describe.

    Returns:
        pathlib.Path | None: the folder (resolved), or None.

    Raises:
        FileNotFoundError: ``KERAS_REVERSIBLE_DATA`` names a missing folder.

    Example:
        >>> import os
        >>> from keras_reversible.data import local_data_dir
        >>> root = local_data_dir()
        >>> root is None or root.is_dir()
        True
    """
    env = os.environ.get(ENV_VAR)
    if not env:
        return None
    path = pathlib.Path(env).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"{ENV_VAR}={env!r} is not an existing folder; point it at the "
            "folder that holds mnist/, cifar10/, ... or unset it.")
    return path.resolve()


def data_folders(name, data_dir=None):
    """The local folders a loader of data set ``name`` reads, in order.

    Args:
        name: the subfolder of ``KERAS_REVERSIBLE_DATA`` for this data set.
        data_dir: an explicit folder; it must exist.

    Returns:
        list[pathlib.Path]: ``[data_dir]``, else ``[$KERAS_REVERSIBLE_DATA/name]``,
        else ``[]`` (then ``source="auto"`` loaders use tensorflow_datasets).

    Raises:
        FileNotFoundError: ``data_dir`` is given but is not an existing folder
            (a typo must not turn into a silent download).
    """
    if data_dir is not None:
        path = pathlib.Path(data_dir).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"data_dir={str(data_dir)!r} is not an existing folder.")
        return [path]
    root = local_data_dir()
    return [root / name] if root is not None else []
