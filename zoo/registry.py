"""The model registry: ``list_models()``, ``get(name)``, ``info(name)``."""

import dataclasses
import functools
import inspect
from typing import Callable

import keras

from keras_reversible.model import MODEL_KEYWORDS, SETTINGS, check_keywords

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


def _check_keywords(fn):
    """``fn`` refusing unknown keywords with ``TypeError`` (closest name in the message).

    Valid: ``fn``'s named parameters and, when it takes ``**reversal``, the
    reversal settings and ``keras.Model``'s own keywords.
    """
    params = inspect.signature(fn).parameters.values()
    valid = tuple(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    if any(p.kind == p.VAR_KEYWORD for p in params):
        valid += SETTINGS + MODEL_KEYWORDS

    @functools.wraps(fn)
    def checked(*args, **kwargs):
        check_keywords(fn.__name__, kwargs, valid)
        return fn(*args, **kwargs)

    return checked


def register(paper, table, reversible=True, **reversal_defaults):
    """Decorator adding a constructor to the registry."""

    def wrap(fn):
        checked = _check_keywords(fn)
        _MODELS[fn.__name__] = ModelInfo(
            fn.__name__, checked, paper, table, dict(reversal_defaults), reversible
        )
        return checked

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
