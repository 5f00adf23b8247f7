"""The model registry: ``list_models()``, ``get(name)``, ``info(name)``."""

import dataclasses
from typing import Callable

_MODELS = {}


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """Metadata of a zoo entry.

    Attributes:
        name: registry name (the constructor's name).
        constructor: the function that builds the model.
        paper: ``"racecar"`` or ``"RN"``.
        table: where the architecture is printed, e.g. ``"table 9"``.
        reversal_defaults: the paper's reversal settings (depth, λ, where the
            reverse pass starts, input range op, reduction).
        reversible: False for plain Keras models (the smoke discriminator).
    """

    name: str
    constructor: Callable
    paper: str
    table: str
    reversal_defaults: dict
    reversible: bool = True


def register(paper, table, reversible=True, **reversal_defaults):
    """Decorator adding a constructor to the registry."""

    def wrap(fn):
        _MODELS[fn.__name__] = ModelInfo(
            fn.__name__, fn, paper, table, dict(reversal_defaults), reversible
        )
        return fn

    return wrap


def list_models():
    """Names of every zoo model, sorted."""
    return sorted(_MODELS)


def info(name):
    """The ``ModelInfo`` of ``name``.

    Raises:
        ValueError: unknown name (the message lists the known ones).
    """
    if name not in _MODELS:
        raise ValueError(f"Unknown zoo model {name!r}; known: {list_models()}.")
    return _MODELS[name]


def get(name, **kwargs):
    """Builds the zoo model ``name`` with ``kwargs``.

    Example:

    ```python
    import zoo
    model = zoo.get("racecar_mi_net")
    ```
    """
    return info(name).constructor(**kwargs)
