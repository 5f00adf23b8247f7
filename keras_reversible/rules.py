"""Reverse rules keyed by layer class: the transpose of each forward layer.

A *reverse rule* maps the reverse signal at a layer's output to the reverse
signal at its input(s), reusing the forward layer's own variables (tied
weights). Rules live in a registry keyed by layer class, the way JAX keeps
transpose rules keyed by primitive; the lookup walks the class's MRO, so a
subclass of ``keras.layers.Conv2D`` is reversed like a ``Conv2D``.

Every rule has a *kind* that tells the graph walker (``graph.py``) what the
layer means for the reverse pass:

* ``"weight"``: a linear layer with weights (Dense, Conv...). Its input is a
  constrained point ``L_m``; the rule returns ``Aᵀ(y − b)``; its fused
  ``activation`` is a range op of the next constrained point.
* ``"structural"``: a parameter-free op (pooling, reshape, padding, merges).
  Most are linear and reversed by their exact transpose.
* ``"pointwise"``: BatchNormalization, LayerNormalization, activations.
  Identity in the reverse walk; re-applied *forward* as range ops at the
  constrained points (racecar paper, section 3).
* ``"identity"``: Dropout and friends: identity, and invisible to range ops.

Example:

```python
import keras
import tensorflow as tf
import keras_reversible as kr

class Scale(keras.layers.Layer):
    def call(self, x):
        return 3.0 * x

kr.register_reverse_rule(Scale)(lambda layer, y: 3.0 * y)
```
"""

import dataclasses
import inspect
from typing import Callable, Optional

import keras
import tensorflow as tf

from keras_reversible import statistics as statistics_lib

KINDS = ("weight", "structural", "pointwise", "identity")


class UnsupportedLayerError(ValueError):
    """A layer on the reverse path has no reverse rule."""


@dataclasses.dataclass(frozen=True)
class ReverseRule:
    """A registered rule.

    Attributes:
        fn: ``fn(layer, y, ctx)``; for ``"pointwise"`` rules the forward
            range op ``fn(layer, x, ctx)``.
        kind: one of ``KINDS``.
        needs_inputs: the rule reads the forward input values
            (``ctx.inputs``), e.g. unpooling to the arg-max positions; a
            bool, or a function of the model's reversal options.
        reshapes: the op changes the memory layout (Flatten, Reshape,
            Permute), so channel-wise range ops found behind it must be
            applied in its input's shape.
        range_barrier: range ops are not collected across this layer
            (invertible preprocessing such as Rescaling).
        name: the registered function's name, for error messages.
    """

    fn: Callable
    kind: str
    needs_inputs: bool = False
    reshapes: bool = False
    range_barrier: bool = False
    name: str = ""


@dataclasses.dataclass
class ReverseContext:
    """What a rule may know about the forward call it reverses.

    Attributes:
        input_shapes: static shapes of the forward inputs (batch ``None``).
        inputs: forward input values, when the rule asked for them.
        training: whether the reverse pass runs in training mode.
        options: the model's reversal options (``max_pool_reverse``,
            ``upsample_reverse``).
        statistics: the reverse BatchNormalization moving statistics
            (``keras_reversible.statistics.ReverseStatistics``), or None to
            fall back to the forward layers' own.
        update_statistics: fold this pass's batch statistics into
            ``statistics`` (training mode only).
    """

    input_shapes: list
    inputs: Optional[list] = None
    training: bool = False
    options: dict = dataclasses.field(default_factory=dict)
    statistics: Optional[object] = None
    update_statistics: bool = False

    def forward_input(self, index, y):
        """The forward value of input ``index`` (needs ``needs_inputs``)."""
        return tf.cast(self.inputs[index], y.dtype)

    def input_shape(self, index, y):
        """The shape of forward input ``index`` as an int32 tensor, batch from ``y``.

        Static dimensions where the graph knows them; a free one (e.g.
        ``keras.Input((None, None, 1))``) from the forward value, which the
        reverse program taps for every layer with a free input dimension.
        """
        shape = self.input_shapes[index]
        if all(d is not None for d in shape[1:]):
            return tf.concat([tf.shape(y)[:1], tf.constant(shape[1:], tf.int32)], 0)
        if self.inputs is None:
            raise ValueError(
                f"Input {index} has a dynamic shape {shape}; the rule needs "
                "its forward value (register it with needs_inputs=True)."
            )
        value = tf.shape(self.inputs[index])
        return tf.stack([tf.shape(y)[0], *(value[i] if d is None else d
                                          for i, d in enumerate(shape) if i > 0)])

    def zeros_like_input(self, index, y):
        """Zeros shaped like forward input ``index``, in ``y``'s dtype.

        The primal at which a linear op's transpose (its VJP) is taken.
        """
        if self.inputs is not None:
            return tf.zeros_like(self.forward_input(index, y))
        shape = self.input_shapes[index]
        if any(d is None for d in shape[1:]):
            raise ValueError(
                f"Input {index} has a dynamic shape {shape}; the rule needs "
                "its forward value (register it with needs_inputs=True)."
            )
        return tf.zeros([tf.shape(y)[0], *shape[1:]], dtype=y.dtype)


_REGISTRY: dict = {}


def _accepts_ctx(fn):
    params = list(inspect.signature(fn).parameters.values())
    positional = [
        p for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    return len(positional) >= 3 or any(p.kind == p.VAR_POSITIONAL for p in params)


def _default_pointwise(layer, x, ctx):
    # ``layer.call`` rather than ``layer(x)``: no autocast to a mixed
    # precision compute dtype, so the reverse pass stays in float32.
    return layer.call(x)


def register_reverse_rule(
    layer_class,
    fn=None,
    *,
    kind="structural",
    needs_inputs=False,
    reshapes=False,
    range_barrier=False,
):
    """Registers the reverse rule of a layer class (the extension point).

    Args:
        layer_class: a ``keras.layers.Layer`` subclass.
        fn: ``fn(layer, y)`` or ``fn(layer, y, ctx)`` returning the reverse
            signal at the layer's input (a list for multi-input layers).
            For ``kind="weight"`` it must return ``Aᵀ(y − b)``. For
            ``kind="pointwise"`` it is the *forward* range op
            ``fn(layer, x[, ctx])``; omit it to use ``layer.call``. For
            ``kind="identity"`` it is ignored.
        kind: ``"weight"``, ``"structural"``, ``"pointwise"`` or
            ``"identity"`` (see the module docstring).
        needs_inputs: the rule reads the forward inputs from ``ctx.inputs``.
        reshapes: the layer changes the memory layout (like Flatten).
        range_barrier: range ops are not collected across this layer.

    Returns:
        A decorator when ``fn`` is None (the rule is registered when it is
        applied; ``"pointwise"`` and ``"identity"`` kinds are registered at
        once with their default), else ``fn``.

    Raises:
        TypeError: ``layer_class`` is not a Keras layer class.
        ValueError: unknown ``kind``.

    Example:

    ```python
    @kr.register_reverse_rule(MyScale)
    def _(layer, y):
        return y * layer.factor
    ```
    """
    if not (inspect.isclass(layer_class) and issubclass(layer_class, keras.layers.Layer)):
        raise TypeError(
            f"register_reverse_rule: layer_class must be a keras.layers.Layer "
            f"subclass, got {layer_class!r}."
        )
    if kind not in KINDS:
        raise ValueError(
            f"register_reverse_rule: kind must be one of {KINDS}, got {kind!r}."
        )

    def register(rule_fn):
        if kind == "identity":
            call = lambda layer, y, ctx: y  # noqa: E731
        elif rule_fn is None:
            call = _default_pointwise
        elif _accepts_ctx(rule_fn):
            call = rule_fn
        else:
            call = lambda layer, y, ctx: rule_fn(layer, y)  # noqa: E731
        name = getattr(rule_fn, "__qualname__", None) or repr(rule_fn)
        _REGISTRY[layer_class] = ReverseRule(
            call, kind, needs_inputs, reshapes, range_barrier, name
        )
        return rule_fn

    if fn is not None:
        return register(fn)
    if kind in ("pointwise", "identity"):
        register(None)
    return register


def rule_for(layer):
    """The rule registered for ``layer``'s class or its nearest base class.

    Raises:
        UnsupportedLayerError: no rule is registered for any class in the
            layer's MRO. The message names the layer and how to register one.
    """
    for cls in type(layer).__mro__:
        if cls in _REGISTRY:
            return _REGISTRY[cls]
    cls = type(layer)
    raise UnsupportedLayerError(
        f"Layer '{layer.name}' (class {cls.__module__}.{cls.__qualname__}) has "
        "no reverse rule, so the reverse pass cannot go through it. Register "
        "one: `@keras_reversible.register_reverse_rule("
        f"{cls.__qualname__}, kind=...)` on a function `fn(layer, y)` that "
        "maps the reverse signal at the layer's output to its input(s) "
        "(kind='pointwise' for activations/normalisations, 'weight' for "
        "linear layers with weights, 'identity' for no-ops)."
    )


# --------------------------------------------------------------------------
# Helpers


def _f(variable, like):
    """A layer variable as a tensor of ``like``'s dtype."""
    return tf.cast(tf.convert_to_tensor(variable), like.dtype)


def _minus_bias(layer, y):
    if getattr(layer, "use_bias", False) and getattr(layer, "bias", None) is not None:
        return y - _f(layer.bias, y)
    return y


def _check_channels_last(layer):
    fmt = getattr(layer, "data_format", "channels_last")
    if fmt != "channels_last":
        raise ValueError(
            f"Layer '{layer.name}' uses data_format={fmt!r}; the reverse "
            "pass supports channels_last only."
        )


def vjp(fn, primals, cotangent):
    """The exact transpose of a linear ``fn`` (or its Jacobianᵀ at primals).

    Args:
        fn: a function of the primals.
        primals: list of tensors where the Jacobian is taken (zeros for a
            linear ``fn``).
        cotangent: the reverse signal at ``fn``'s output.

    Returns:
        list of tensors, one per primal.
    """
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        for p in primals:
            tape.watch(p)
        out = fn(*primals)
    return tape.gradient(
        out, primals, output_gradients=cotangent,
        unconnected_gradients=tf.UnconnectedGradients.ZERO,
    )


def _transpose_of_call(layer, y, ctx):
    """Exact transpose of a parameter-free linear layer: VJP of ``call``."""
    n = len(ctx.input_shapes)
    primals = [ctx.zeros_like_input(i, y) for i in range(n)]
    if n == 1:
        return vjp(layer.call, primals, y)[0]
    return vjp(lambda *xs: layer.call(list(xs)), primals, y)


def _add_transpose(layer, y, ctx):
    """Add: a copy of ``y`` to every input (its VJP, without a forward of zeros)."""
    if any(tuple(shape[1:]) != tuple(y.shape[1:]) for shape in ctx.input_shapes):
        return _transpose_of_call(layer, y, ctx)  # broadcasting inputs
    return [y] * len(ctx.input_shapes)


def _concatenate_transpose(layer, y, ctx):
    """Concatenate: split ``y`` along the axis (its VJP, without a forward of zeros)."""
    axis = layer.axis % len(ctx.input_shapes[0])
    sizes = [shape[axis] for shape in ctx.input_shapes]
    if axis == 0 or any(size is None for size in sizes):
        return _transpose_of_call(layer, y, ctx)
    return tf.split(y, sizes, axis=axis)


def _fit_spatial(x, shape, dynamic=None):
    """Crop or zero-pad the spatial axes of ``x`` to ``shape``.

    ``shape`` is static; its free dimensions are taken from the int32 tensor
    ``dynamic`` (the full shape, e.g. ``ReverseContext.input_shape``).
    """
    rank = len(shape)
    for axis in range(1, rank - 1):
        want = shape[axis]
        have = x.shape[axis]
        if want is None or have is None:
            want = dynamic[axis] if want is None else want
            have = tf.shape(x)[axis]
            x = tf.gather(x, tf.range(tf.minimum(want, have)), axis=axis)
            pad = [[0, 0]] * rank
            pad[axis] = [0, tf.maximum(want - have, 0)]
            x = tf.pad(x, pad)
        elif have > want:
            x = tf.gather(x, tf.range(want), axis=axis)
        elif have < want:
            pad = [[0, 0]] * rank
            pad[axis] = [0, want - have]
            x = tf.pad(x, pad)
    return x


def _nearest_up(y, factors, ctx):
    for axis, factor in enumerate(factors, start=1):
        if factor > 1:
            y = tf.repeat(y, factor, axis=axis)
    shape = ctx.input_shapes[0]
    dynamic = ctx.input_shape(0, y) if any(d is None for d in shape[1:]) else None
    return _fit_spatial(y, shape, dynamic)


# --------------------------------------------------------------------------
# Weight layers


def _dense(layer, y, ctx):
    kernel = _f(layer.kernel, y)
    return tf.tensordot(_minus_bias(layer, y), kernel, axes=[[y.shape.rank - 1], [1]])


def _conv_linear(layer, x):
    """The linear part of a Conv layer, causal padding included."""
    padding = layer.padding
    if padding == "causal":
        x = keras.ops.pad(x, layer._compute_causal_padding())
        padding = "valid"
    return keras.ops.conv(
        x, _f(layer.kernel, x), strides=list(layer.strides), padding=padding,
        dilation_rate=layer.dilation_rate, data_format=layer.data_format,
    )


def _conv(layer, y, ctx):
    _check_channels_last(layer)
    y = _minus_bias(layer, y)
    if layer.groups != 1 or layer.padding == "causal":
        primal = ctx.zeros_like_input(0, y)
        return vjp(lambda x: _conv_linear(layer, x), [primal], y)[0]
    return tf.nn.conv_transpose(
        y,
        _f(layer.kernel, y),
        ctx.input_shape(0, y),
        strides=list(layer.strides),
        padding=layer.padding.upper(),
        dilations=list(layer.dilation_rate),
    )


def _weight_by_vjp(linear_part):
    """A weight rule: the VJP of the layer's linear part, after − bias."""

    def rule(layer, y, ctx):
        _check_channels_last(layer)
        y = _minus_bias(layer, y)
        primal = ctx.zeros_like_input(0, y)
        return vjp(lambda x: linear_part(layer, x), [primal], y)[0]

    return rule


def _depthwise_linear(layer, x):
    return keras.ops.depthwise_conv(
        x, _f(layer.kernel, x), strides=layer.strides, padding=layer.padding,
        data_format=layer.data_format, dilation_rate=layer.dilation_rate,
    )


def _separable_linear(layer, x):
    return keras.ops.separable_conv(
        x, _f(layer.depthwise_kernel, x), _f(layer.pointwise_kernel, x),
        strides=layer.strides, padding=layer.padding,
        data_format=layer.data_format, dilation_rate=layer.dilation_rate,
    )


def _conv_transpose_linear(layer, x):
    return keras.ops.conv_transpose(
        x, _f(layer.kernel, x), strides=layer.strides, padding=layer.padding,
        output_padding=layer.output_padding, data_format=layer.data_format,
        dilation_rate=layer.dilation_rate,
    )


# --------------------------------------------------------------------------
# Structural layers with a paper-specific default


def _unpools(options):
    return options.get("max_pool_reverse", "upsample") == "unpool"


def _max_pooling(layer, y, ctx):
    """Paper: nearest up-sampling (UP); option ``"unpool"``: exact transpose."""
    _check_channels_last(layer)
    if ctx.options.get("max_pool_reverse", "upsample") == "unpool":
        return vjp(layer.call, [ctx.forward_input(0, y)], y)[0]
    return _nearest_up(y, layer.strides, ctx)


def _global_max_pooling(layer, y, ctx):
    """Paper-style UP: broadcast to every position; ``"unpool"``: arg-max."""
    _check_channels_last(layer)
    if ctx.options.get("max_pool_reverse", "upsample") == "unpool":
        return vjp(layer.call, [ctx.forward_input(0, y)], y)[0]
    shape = ctx.input_shapes[0]
    if not layer.keepdims:
        for _ in shape[1:-1]:
            y = tf.expand_dims(y, 1)
    return tf.broadcast_to(y, ctx.input_shape(0, y))


def _up_sampling(layer, y, ctx):
    """Paper (racecar table 13): max pooling; option ``"transpose"``: exact."""
    _check_channels_last(layer)
    if ctx.options.get("upsample_reverse", "max_pool") == "transpose":
        return _transpose_of_call(layer, y, ctx)
    size = layer.size if isinstance(layer.size, (tuple, list)) else (layer.size,)
    return tf.nn.max_pool(y, ksize=list(size), strides=list(size), padding="VALID")


def _rescaling_inverse(layer, y, ctx):
    scale = tf.cast(layer.scale, y.dtype)
    offset = tf.cast(layer.offset, y.dtype)
    return (y - offset) / scale


def _normalization_inverse(layer, y, ctx):
    # The layer divides by max(sqrt(variance), epsilon), so a zero-variance
    # feature is scaled by 1/epsilon forward and by epsilon here.
    mean = tf.cast(layer.mean, y.dtype)
    std = tf.maximum(tf.sqrt(tf.cast(layer.variance, y.dtype)), keras.backend.epsilon())
    if layer.invert:
        return (y - mean) / std
    return y * std + mean


def _batch_norm_range(layer, x, ctx):
    """BN as a range op: γ, β of the forward layer.

    In training the reverse signal is normalised with its own batch
    statistics (and, with ``ctx.update_statistics``, they are folded into the
    reverse moving statistics); otherwise with the reverse moving statistics
    in ``ctx.statistics`` (the forward layer's own when there are none). The
    forward layer's moving averages are never touched.
    """
    # The channel axis counted from the end of the layer's own input, so the
    # op also applies after a rank-changing op such as global pooling.
    rank_in = len(layer.input.shape)
    axis = x.shape.rank + (layer.axis % rank_in) - rank_in
    channels = x.shape[axis]
    gamma = _f(layer.gamma, x) if layer.scale else tf.ones([channels], x.dtype)
    beta = _f(layer.beta, x) if layer.center else tf.zeros([channels], x.dtype)
    # One fused kernel where possible (as the forward layer uses): the
    # unfused ops keep several batch-sized intermediates for backprop.
    fused = x.shape.rank == 4 and axis == 3 and x.dtype == tf.float32
    reduce = [a for a in range(x.shape.rank) if a != axis]
    bshape = [channels if a == axis else 1 for a in range(x.shape.rank)]

    def normalize(mean, variance):
        return tf.nn.batch_normalization(
            x, tf.reshape(mean, bshape), tf.reshape(variance, bshape),
            tf.reshape(beta, bshape), tf.reshape(gamma, bshape), layer.epsilon)

    if not ctx.training:
        moving = ctx.statistics.get(layer) if ctx.statistics is not None else None
        mean, variance = moving or (layer.moving_mean, layer.moving_variance)
        mean, variance = _f(mean, x), _f(variance, x)
        if fused:
            return tf.compat.v1.nn.fused_batch_norm(
                x, gamma, beta, mean=mean, variance=variance,
                epsilon=layer.epsilon, is_training=False)[0]
        return normalize(mean, variance)
    if fused:  # its batch variance is already the unbiased one
        y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            x, gamma, beta, epsilon=layer.epsilon, is_training=True)
    else:
        mean, variance = tf.nn.moments(x, reduce)
        y = normalize(mean, variance)
        variance = statistics_lib.bessel_corrected(variance, x, reduce)
    if ctx.update_statistics and ctx.statistics is not None:
        ctx.statistics.update(layer, mean, variance)
    return y


# --------------------------------------------------------------------------
# The built-in table (DESIGN §1)

L = keras.layers

register_reverse_rule(L.Dense, _dense, kind="weight")
for _cls in (L.Conv1D, L.Conv2D, L.Conv3D):
    register_reverse_rule(_cls, _conv, kind="weight")
for _cls in (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose):
    register_reverse_rule(_cls, _weight_by_vjp(_conv_transpose_linear), kind="weight")
for _cls in (L.DepthwiseConv1D, L.DepthwiseConv2D):
    register_reverse_rule(_cls, _weight_by_vjp(_depthwise_linear), kind="weight")
for _cls in (L.SeparableConv1D, L.SeparableConv2D):
    register_reverse_rule(_cls, _weight_by_vjp(_separable_linear), kind="weight")

for _cls in (L.MaxPooling1D, L.MaxPooling2D, L.MaxPooling3D):
    register_reverse_rule(_cls, _max_pooling, needs_inputs=_unpools)
for _cls in (L.GlobalMaxPooling1D, L.GlobalMaxPooling2D, L.GlobalMaxPooling3D):
    register_reverse_rule(_cls, _global_max_pooling, needs_inputs=_unpools)
for _cls in (L.UpSampling1D, L.UpSampling2D, L.UpSampling3D):
    register_reverse_rule(_cls, _up_sampling)
for _cls in (
    L.AveragePooling1D, L.AveragePooling2D, L.AveragePooling3D,
    L.GlobalAveragePooling1D, L.GlobalAveragePooling2D, L.GlobalAveragePooling3D,
    L.ZeroPadding1D, L.ZeroPadding2D, L.ZeroPadding3D,
    L.Cropping1D, L.Cropping2D, L.Cropping3D,
    L.Subtract, L.Average,
):
    register_reverse_rule(_cls, _transpose_of_call)
register_reverse_rule(L.Add, _add_transpose)
register_reverse_rule(L.Concatenate, _concatenate_transpose)
for _cls in (L.Flatten, L.Reshape, L.Permute):
    register_reverse_rule(_cls, _transpose_of_call, reshapes=True)

register_reverse_rule(L.Rescaling, _rescaling_inverse, range_barrier=True)
register_reverse_rule(L.Normalization, _normalization_inverse, range_barrier=True)

register_reverse_rule(L.BatchNormalization, _batch_norm_range, kind="pointwise")
for _cls in (
    L.LayerNormalization, L.GroupNormalization, L.UnitNormalization,
    L.Activation, L.ReLU, L.LeakyReLU, L.ELU, L.Softmax, L.PReLU,
):
    register_reverse_rule(_cls, kind="pointwise")

for _cls in (
    L.Dropout, L.SpatialDropout1D, L.SpatialDropout2D, L.SpatialDropout3D,
    L.GaussianNoise, L.GaussianDropout, L.AlphaDropout,
    L.ActivityRegularization, L.Identity,
):
    register_reverse_rule(_cls, kind="identity")

del L, _cls
