"""The reversal settings of a ``ReversibleModel``: one frozen, validated object.

Every setting's default is defined here, once (``ReversalConfig``'s fields),
except the pooling options', which belong to the rules that read them
(``registry.OPTIONS``: the allowed values, the first one the default).
"""

import dataclasses
import difflib
import numbers
from typing import Any, Optional, Union

import keras
import numpy as np

from keras_reversible import losses, registry

MAX_POOL_REVERSE = registry.OPTIONS["max_pool_reverse"]
UPSAMPLE_REVERSE = registry.OPTIONS["upsample_reverse"]
DEFAULT_MAX_POOL_REVERSE = registry.DEFAULT_OPTIONS["max_pool_reverse"]
DEFAULT_UPSAMPLE_REVERSE = registry.DEFAULT_OPTIONS["upsample_reverse"]
UNKNOWN_LAYERS = registry.OPTIONS["unknown_layers"]
DEFAULT_UNKNOWN_LAYERS = registry.DEFAULT_OPTIONS["unknown_layers"]

# keras.Model's keywords that ReversibleModel passes through: a functional
# model honours ``trainable`` alone and silently drops every other keyword
# (``dtype``, ``autocast``, ``activity_regularizer``, typos), so only it passes.
MODEL_KEYWORDS = ("trainable",)


def check_keywords(owner, kwargs, valid):
    """Raises ``TypeError`` for a keyword of ``kwargs`` not in ``valid``.

    The message names the keyword and the closest valid name (or lists them).

    Args:
        owner: what was called, for the message (e.g. ``"make_reversible"``).
        kwargs: the keyword arguments received.
        valid: the names ``owner`` accepts.
    """
    for name in kwargs:
        if name in valid:
            continue
        close = difflib.get_close_matches(name, valid, n=1)
        hint = (f"did you mean {close[0]!r}?" if close
                else f"valid keywords: {', '.join(sorted(valid))}.")
        raise TypeError(f"{owner}() got an unexpected keyword argument {name!r}; {hint}")


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_float(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}.")


def resolve_input_range(value):
    """The callable of an ``input_range`` setting (None for identity).

    Raises:
        ValueError: an unknown activation name.
        TypeError: neither None, a string nor a callable.
    """
    if value is None:
        return None
    if isinstance(value, str) or callable(value):
        try:
            return keras.activations.get(value)
        except (ValueError, TypeError) as err:
            raise ValueError(
                f"input_range: unknown activation {value!r} (use None, a "
                "Keras activation name such as 'relu' or 'tanh', or a callable)."
            ) from err
    raise TypeError(
        f"input_range must be None, an activation name or a callable, got "
        f"{type(value).__name__}: {value!r}."
    )


@dataclasses.dataclass(frozen=True)
class ReversalConfig:
    """The reversal settings (DESIGN §3), validated when created.

    Attributes:
        depth: ``s``, how many constrained points, counted from the input,
            enter the racecar loss; None (default) for all on the reverse
            path, 0 trains without the reverse pass.
        racecar_weight: ``λ``: a float, or one float per constrained point
            (length ``depth``; stored as a tuple). Default 1.0.
        reverse_from: name of the layer whose output starts the reverse pass
            (``I_r``); None (default) for the network output. Layers after
            it (the head) get no gradient from the racecar loss.
        input_range: range op applied to ``L'_1``: None (identity, default),
            an activation name (``"relu"`` for images in [0, 1], ``"tanh"``)
            or a callable.
        reduction: ``"mean"`` (default: mean of squares, scale-free) or
            ``"l2_loss"`` (the official racecar code's ``tf.nn.l2_loss``,
            needed for the papers' λ values to carry over); see
            ``keras_reversible.losses``.
        latent_generation: RNL latent feature generation (RN eq. 8): None
            (off, default), True, a dict of ``LatentGeneration`` fields or a
            ``LatentGeneration``.
        max_pool_reverse: ``"upsample"`` (default, paper: nearest ×stride)
            or ``"unpool"`` (exact transpose: to the arg-max positions).
        upsample_reverse: ``"max_pool"`` (default, paper, racecar table 13)
            or ``"transpose"`` (exact transpose of the up-sampling).
        unknown_layers: what to do with a layer or raw op that has no
            reverse rule: ``"error"`` (default: ``UnsupportedLayerError``
            naming it and how to register a rule) or ``"linearize"`` (the
            transpose of its Jacobian at the forward input, in inference
            mode: exact for a linear layer; each such layer is named once
            in a warning and in ``reverse_summary()``).

    Raises:
        ValueError: a value out of range, naming the setting.
        TypeError: a value of the wrong type, naming the setting.

    Example:

    ```python
    import keras_reversible as kr

    config = kr.ReversalConfig(depth=3, racecar_weight=[1e-3, 1e-4, 1e-5])
    config.lambdas(num_constrained=4)   # [0.001, 0.0001, 1e-05]
    ```
    """

    depth: Optional[int] = None
    racecar_weight: Union[float, tuple] = 1.0
    reverse_from: Optional[str] = None
    input_range: Any = None
    reduction: str = losses.REDUCTIONS[0]
    latent_generation: Any = None
    max_pool_reverse: str = DEFAULT_MAX_POOL_REVERSE
    upsample_reverse: str = DEFAULT_UPSAMPLE_REVERSE
    unknown_layers: str = DEFAULT_UNKNOWN_LAYERS

    def __post_init__(self):
        _check_choice("reduction", self.reduction, losses.REDUCTIONS)
        _check_choice("max_pool_reverse", self.max_pool_reverse, MAX_POOL_REVERSE)
        _check_choice("upsample_reverse", self.upsample_reverse, UPSAMPLE_REVERSE)
        _check_choice("unknown_layers", self.unknown_layers, UNKNOWN_LAYERS)
        if self.reverse_from is not None and not isinstance(self.reverse_from, str):
            raise TypeError(
                "reverse_from must be a layer name (str) or None, got "
                f"{type(self.reverse_from).__name__}: {self.reverse_from!r}.")
        depth = self.depth
        if depth is not None and not _is_int(depth):
            raise TypeError(f"depth must be an int or None, got {type(depth).__name__}: {depth!r}.")
        if depth is not None and depth < 0:
            raise ValueError(f"depth must be >= 0, got {depth}.")
        weight = self.racecar_weight
        per_point = isinstance(weight, (list, tuple))
        if not per_point and not _is_float(weight):
            raise TypeError(
                "racecar_weight must be a float or a list of floats, got "
                f"{type(weight).__name__}: {weight!r}.")
        for w in weight if per_point else [weight]:
            if not _is_float(w):
                raise TypeError(f"racecar_weight entries must be floats, got {w!r} in {weight!r}.")
            if not np.isfinite(w) or w < 0:
                raise ValueError(
                    f"racecar_weight entries must be finite and >= 0, got {w!r} in {weight!r}.")
        object.__setattr__(self, "racecar_weight",
                           tuple(float(w) for w in weight) if per_point else float(weight))
        resolve_input_range(self.input_range)
        losses.LatentGeneration.parse(self.latent_generation)

    @property
    def input_range_fn(self):
        """The ``input_range`` op as a callable, or None for identity."""
        return resolve_input_range(self.input_range)

    @property
    def options(self):
        """The reversal options the rules read (``registry.OPTIONS``), by name."""
        return {name: getattr(self, name) for name in registry.OPTIONS}

    @property
    def latent(self):
        """The ``LatentGeneration`` settings, or None when off (or weight 0)."""
        latent = losses.LatentGeneration.parse(self.latent_generation)
        return None if latent is None or latent.weight == 0 else latent

    def lambdas(self, num_constrained, model_name="model", weight_layer_names=()):
        """``λ_1 … λ_s``: one float per constrained point, ``s`` the depth.

        Args:
            num_constrained: how many points the reverse path offers (the
                depth when ``depth`` is None).
            model_name, weight_layer_names: for the message: the model and
                the weight layers whose inputs are the constrained points.

        Returns:
            A list of ``s`` floats.

        Raises:
            ValueError: ``depth`` above ``num_constrained``, or a per-point
                ``racecar_weight`` whose length is not the depth.
        """
        depth = num_constrained if self.depth is None else self.depth
        if depth > num_constrained:
            raise ValueError(
                f"depth={depth} but the reverse pass of model '{model_name}' constrains "
                f"only {num_constrained} points (the inputs of its weight layers: "
                f"{', '.join(weight_layer_names)}); use depth <= {num_constrained}.")
        if not isinstance(self.racecar_weight, tuple):
            return [self.racecar_weight] * depth
        if len(self.racecar_weight) != depth:
            raise ValueError(
                f"racecar_weight has {len(self.racecar_weight)} entries but depth is "
                f"{depth}; give one λ per constrained point or a single float.")
        return list(self.racecar_weight)

    def as_dict(self):
        """The settings as passed (a per-point ``racecar_weight`` as a list)."""
        settings = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if isinstance(self.racecar_weight, tuple):
            settings["racecar_weight"] = list(self.racecar_weight)
        return settings

    def get_config(self):
        """``as_dict`` with callables and ``LatentGeneration`` serialised."""
        config = self.as_dict()
        if callable(config["input_range"]):
            config["input_range"] = keras.activations.serialize(config["input_range"])
        if isinstance(config["latent_generation"], losses.LatentGeneration):
            config["latent_generation"] = dataclasses.asdict(config["latent_generation"])
        return config


# The reversal settings' keyword names (DESIGN §3), in the constructor's order.
SETTINGS = tuple(f.name for f in dataclasses.fields(ReversalConfig))
