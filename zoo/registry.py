"""The model registry: one ``ModelInfo`` per constructor, holding the values it uses.

Each constructor module declares its entry (in the style of timm's
``default_cfgs``) and registers the constructor with it; the constructor
reads its defaults from the entry (``num_classes``, ``input_shape``, the
reversal settings through ``ModelInfo.settings``), the tests read the same
entry (test input, task loss, parameter counts, gradient exceptions) and
``zoo.table`` renders it for the README. ``list_models()``, ``info(name)``
and ``get(name, **kwargs)`` are the public look-ups; ``list_presets()`` names
the pretrained weights (``ModelInfo.presets``, loaded by ``zoo.pretrained``).
"""

import dataclasses
import functools
import inspect
import types
from typing import Callable, Optional

import keras

from keras_reversible.config import MODEL_KEYWORDS, SETTINGS, check_keywords
from zoo.pretrained import Preset

# The reversal settings every reversible entry states (the papers fix them);
# the others (latent_generation, max_pool_reverse, upsample_reverse) are
# ReversibleModel's defaults unless an entry names them.
PAPER_SETTINGS = ("depth", "racecar_weight", "reverse_from", "input_range", "reduction")

_MODELS = {}
_CONSTRUCTORS = {}


def _frozen(mapping):
    return types.MappingProxyType(dict(mapping))


@dataclasses.dataclass(frozen=True)
class SmallInput:
    """What an entry changes for inputs of at most ``max_side`` pixels a side.

    Some families switch to their CIFAR layout for small inputs; the
    constructor asks ``applies(input_shape)`` to choose the layout, so the
    layout, the reversal defaults and the gradient exceptions switch together.

    Attributes:
        max_side: the largest side (height or width, in pixels) of a small input.
        reversal: reversal settings that replace the entry's for small inputs.
        gradient_exceptions: replaces the entry's ``gradient_exceptions`` for
            small inputs (None: unchanged).
    """

    max_side: int
    reversal: dict = dataclasses.field(default_factory=dict)
    gradient_exceptions: Optional[tuple] = None

    def __post_init__(self):
        object.__setattr__(self, "reversal", _frozen(self.reversal))

    def applies(self, input_shape):
        """True when every spatial side of ``input_shape`` (H, W, C) is at most ``max_side``."""
        return max(input_shape[:2]) <= self.max_side


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """A zoo entry: the values its constructor uses and its tests check.

    Attributes:
        name: registry name (the constructor's name).
        paper: ``"racecar"`` or ``"RN"``.
        table: where the architecture is printed, e.g. ``"table 9"``.
        input_shape: the constructor's default ``input_shape``.
        num_classes: the constructor's default ``num_classes``.
        task_loss: the loss the model is trained with (its output is
            probabilities, logits or an image).
        test_input_shape: a small ``input_shape`` of the same layout, on
            which the tests build, reverse, train and save the model.
        parameters: ``count_params()`` of the network (BatchNormalization's
            moving statistics included, the reverse pass's statistics not) at
            the default ``input_shape`` and ``num_classes``.
        trainable_parameters: the trainable part of ``parameters``.
        reversal: the constructor's reversal defaults, keyed by the setting
            names of ``keras_reversible.ReversibleModel`` (at least
            ``PAPER_SETTINGS``); None for a plain Keras model.
        gradient_exceptions: layers or variables (``"layer"``,
            ``"layer/variable"``, ``fnmatch`` patterns allowed) that get no
            racecar-loss gradient by construction: the head after
            ``reverse_from``, a bias the reverse pass subtracts from its own
            layer's output, ... Exactly these get none.
        task_gradient_exceptions: variables (same patterns) whose task-loss
            gradient may vanish: a bias right before a BatchNormalization,
            whose batch mean cancels it in training.
        small_input: the entry's values for small inputs, if they differ.
        keywords: the constructor's keyword for a reversal setting where it
            is not the setting's name (``{"depth": "reverse_depth"}`` where
            ``depth`` is the network's depth).
        presets: pretrained weights, preset name → ``zoo.pretrained.Preset``
            (its file is ``<name>-<preset>.weights.h5``); the constructor's
            ``weights`` argument loads them. Empty for most entries.
    """

    name: str
    paper: str
    table: str
    input_shape: tuple
    num_classes: int
    task_loss: keras.losses.Loss
    test_input_shape: tuple
    parameters: int
    trainable_parameters: int
    reversal: Optional[dict] = None
    gradient_exceptions: tuple = ()
    task_gradient_exceptions: tuple = ()
    small_input: Optional[SmallInput] = None
    keywords: dict = dataclasses.field(default_factory=dict)
    presets: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.reversal is not None:
            missing = [k for k in PAPER_SETTINGS if k not in self.reversal]
            unknown = [k for k in self.reversal if k not in SETTINGS]
            if missing or unknown:
                raise ValueError(f"{self.name}: reversal must hold {PAPER_SETTINGS} and only "
                                 f"settings of {SETTINGS}; missing {missing}, unknown {unknown}.")
            object.__setattr__(self, "reversal", _frozen(self.reversal))
        if self.small_input is not None:
            unknown = [k for k in self.small_input.reversal if k not in (self.reversal or {})]
            if unknown:
                raise ValueError(f"{self.name}: small_input.reversal overrides settings the "
                                 f"entry does not state: {unknown}.")
        object.__setattr__(self, "keywords", _frozen(self.keywords))
        for preset, record in self.presets.items():
            if not isinstance(record, Preset):
                raise ValueError(f"{self.name}: preset {preset!r} must be a zoo.pretrained.Preset, "
                                 f"got {type(record).__name__}.")
            if record.file != f"{self.name}-{preset}.weights.h5":
                raise ValueError(f"{self.name}: preset {preset!r} must name the file "
                                 f"'{self.name}-{preset}.weights.h5', got {record.file!r}.")
        object.__setattr__(self, "presets", _frozen(self.presets))

    @property
    def reversible(self):
        """False for a plain Keras model (no reversal settings)."""
        return self.reversal is not None

    @property
    def constructor(self):
        """The registered constructor (checks its keywords)."""
        if self.name not in _CONSTRUCTORS:
            raise ValueError(f"{self.name!r} is not a registered zoo model.")
        return _CONSTRUCTORS[self.name]

    def _small(self, input_shape):
        shape = self.input_shape if input_shape is None else input_shape
        return self.small_input is not None and self.small_input.applies(shape)

    def reversal_defaults(self, input_shape=None):
        """The reversal defaults for ``input_shape`` (default: the entry's).

        Returns:
            A new dict (empty for a plain Keras model).
        """
        defaults = dict(self.reversal or {})
        if self._small(input_shape):
            defaults.update(self.small_input.reversal)
        return defaults

    def gradient_exceptions_for(self, input_shape=None):
        """``gradient_exceptions`` for ``input_shape`` (default: the entry's)."""
        if self._small(input_shape) and self.small_input.gradient_exceptions is not None:
            return tuple(self.small_input.gradient_exceptions)
        return tuple(self.gradient_exceptions)

    def settings(self, input_shape, overrides):
        """The reversal settings a constructor passes to ``ReversibleModel``.

        Args:
            input_shape: the model's input shape (chooses the small-input values).
            overrides: the settings the caller passed, by setting name.

        Returns:
            ``reversal_defaults(input_shape)`` updated with ``overrides``.
        """
        return {**self.reversal_defaults(input_shape), **overrides}

    def keyword(self, setting):
        """The constructor's keyword for the reversal ``setting``."""
        return self.keywords.get(setting, setting)

    def rendered_reversal(self):
        """The reversal defaults as text for the docs: ``"depth=16, racecar_weight=1e-10 (1e-07
        at ≤64 px), ..."``; ``"not reversible"`` for a plain model."""
        if not self.reversible:
            return "not reversible"
        small = self.small_input.reversal if self.small_input else {}
        parts = []
        for key, value in self.reversal.items():
            text = "output" if key == "reverse_from" and value is None else str(value)
            if key in small:
                text += f" ({small[key]} at ≤{self.small_input.max_side} px)"
            parts.append(f"{self.keyword(key)}={text}")
        return ", ".join(parts)


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


def register(entry):
    """Decorator adding a constructor to the registry under its ``ModelInfo``.

    Args:
        entry: the constructor's ``ModelInfo`` (``entry.name`` is the
            function's name).

    Returns:
        The decorator; it returns the constructor wrapped to refuse unknown
        keywords.
    """

    def wrap(fn):
        if fn.__name__ != entry.name:
            raise ValueError(f"register: entry {entry.name!r} given to function {fn.__name__!r}.")
        checked = _check_keywords(fn)
        _MODELS[entry.name] = entry
        _CONSTRUCTORS[entry.name] = checked
        return checked

    return wrap


def list_models():
    """Names of every zoo model, sorted."""
    return sorted(_MODELS)


def list_presets():
    """Every pretrained preset, as ``"<model>/<preset>"``, sorted.

    Example:

    ```python
    import zoo
    print(zoo.list_presets())  # [..., 'racecar_mnist_cnn/mnist', ...]
    ```
    """
    return sorted(f"{name}/{preset}" for name, entry in _MODELS.items() for preset in entry.presets)


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
