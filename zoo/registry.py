"""The model registry: ``list_models()``, ``get(name)``, ``info(name)``."""

import dataclasses
import functools
from typing import Callable

import keras

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

    @property
    def parameters(self):
        """Parameter count of the network (``count_params``, BN moving statistics
        included, the reverse pass's BN statistics not) at the
        constructor's default ``num_classes``/``input_shape``; computed on
        first use by building the model, then cached."""
        return _parameters(self.name)


@functools.lru_cache(maxsize=None)
def _parameters(name):
    model = _MODELS[name].constructor()
    # The network's own: a ReversibleModel's reverse BN statistics are not counted.
    count = int(keras.Model(model.inputs, model.outputs).count_params())
    del model
    return count


def merge_settings(defaults, overrides):
    """The paper's reversal ``defaults`` updated with the user's ``overrides``."""
    settings = dict(defaults)
    settings.update(overrides)
    return settings


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
