"""Optional dependencies: imported where they are used, with an error that names the extra.

The core install needs tensorflow, keras and numpy only; the data loaders,
figures and the smoke simulation use packages from the extras
(``pip install 'keras-reversible[examples]'``, ``[smoke]``).
"""

import importlib

EXTRA_OF = {
    "scipy": "examples",
    "matplotlib": "examples",
    "tensorflow_datasets": "examples",
    "phi": "smoke",
}


def import_extra(module, purpose):
    """Imports ``module`` (e.g. ``"scipy.ndimage"``) or says which extra installs it.

    Args:
        module: the module's dotted name.
        purpose: what needs it, for the message (e.g. ``"motion blur"``).

    Returns:
        The imported module.

    Raises:
        ImportError: the module is not installed; the message names the
            ``pip install`` command of its extra.
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        extra = EXTRA_OF.get(module.split(".")[0], "all")
        raise ImportError(
            f"{purpose} needs {module.split('.')[0]}, which the core install does not "
            f"include: pip install 'keras-reversible[{extra}]'.") from err
