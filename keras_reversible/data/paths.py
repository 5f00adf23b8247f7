"""Where the project's shared data folder lives."""

import os
import pathlib

ENV_VAR = "KERAS_REVERSIBLE_DATA"


def shared_data_dir():
    """The ``shared/data`` folder that holds the project's offline data sets.

    Looked up in this order:

    1. the environment variable ``KERAS_REVERSIBLE_DATA`` if it is set (the
       folder must exist);
    2. the first existing ``<ancestor>/shared/data`` or
       ``<ancestor>/../shared/data`` walking up from the current working
       directory;
    3. the same, walking up from this file's location (a checkout with
       ``shared/`` beside the repository).

    Returns:
        pathlib.Path | None: the folder (resolved), or ``None`` if none exists.

    Raises:
        FileNotFoundError: ``KERAS_REVERSIBLE_DATA`` names a missing folder.

    Example:
        >>> from keras_reversible.data import shared_data_dir
        >>> root = shared_data_dir()
        >>> root is None or (root / "mnist").is_dir()
        True
    """
    env = os.environ.get(ENV_VAR)
    if env:
        path = pathlib.Path(env).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(
                f"{ENV_VAR}={env!r} is not an existing folder; point it at the "
                "folder that holds mnist/, mi_sphere/, ... or unset it.")
        return path.resolve()
    for start in (pathlib.Path.cwd(), pathlib.Path(__file__).resolve().parent):
        for ancestor in (start, *start.parents):
            for candidate in (ancestor / "shared" / "data",
                              ancestor.parent / "shared" / "data"):
                if candidate.is_dir():
                    return candidate.resolve()
    return None
