"""The reverse-rule registry: the mechanism, no rules.

A *reverse rule* tells the reverse pass what a forward operation means for
it, reusing the layer's own variables (tied weights). Rules live in a
registry keyed by operation class, the way JAX keeps transpose rules keyed by
primitive: a ``keras.layers.Layer`` or a raw ``keras.Operation`` (what
``keras.ops.pad(x, ...)`` or ``x + 3.0`` leave in a functional graph). A rule
may also be keyed by the class's qualified name (a string such as
``"keras.src.ops.numpy.Pad"``), so that other libraries' private classes get
rules without a private import. The lookup walks the class's MRO, checking
the class and then its qualified name at each step, so a subclass of
``keras.layers.Conv2D`` is reversed like a ``Conv2D``. The package's own rules are in
``keras_reversible.rules``, one module per layer family, each registering its
rules next to their definitions; importing ``keras_reversible`` registers
them all.

A rule's *kind* decides which of its two functions the reverse program
(``graph.py``) calls:

* ``"weight"``: a linear layer with weights (Dense, Conv...). Its input is a
  constrained point ``L_m``; its ``transpose`` returns ``Aᵀ(y − b)``; its
  fused ``activation`` is a range op of the next constrained point.
* ``"structural"``: a parameter-free op (pooling, reshape, padding, merges).
  Most are linear and their ``transpose`` is the exact transpose.
* ``"pointwise"``: BatchNormalization, LayerNormalization, activations.
  The identity in the reverse walk; its ``range_op`` is re-applied *forward*
  at the constrained points (racecar paper, section 3).
* ``"identity"``: Dropout and friends: the identity, and invisible to range
  ops. Neither function.

The two functions have one signature each:

* ``transpose(layer, y, ctx)``: the reverse signal ``y`` at the layer's
  output (a list for multi-output layers) to the reverse signal at its
  input (a list for multi-input layers).
* ``range_op(layer, x, ctx)``: the layer's pointwise op applied forward to
  the reverse signal ``x``.
"""

import dataclasses
import functools
import inspect
from typing import Callable, Optional, Union

import keras
import tensorflow as tf

KINDS = ("weight", "structural", "pointwise", "identity")
LINEAR_KINDS = ("weight", "structural")

# The reversal options the rules read (``ReverseContext.option``) and their
# values; the first value of each is the default, the papers' choice.
OPTIONS = {
    # MaxPooling: "upsample" (nearest up-sampling by the strides, the papers'
    # UP) or "unpool" (to the arg-max positions: the exact transpose at x).
    "max_pool_reverse": ("upsample", "unpool"),
    # UpSampling: "max_pool" (racecar table 13) or "transpose" (exact).
    "upsample_reverse": ("max_pool", "transpose"),
    # A layer or op without a rule: "error" (UnsupportedLayerError) or
    # "linearize" (the transpose of its Jacobian at the forward input).
    "unknown_layers": ("error", "linearize"),
}
DEFAULT_OPTIONS = {name: values[0] for name, values in OPTIONS.items()}


def option(options, name):
    """The value of reversal option ``name`` in ``options``, else its default."""
    return options.get(name, DEFAULT_OPTIONS[name])


class UnsupportedLayerError(ValueError):
    """A layer on the reverse path has no reverse rule."""


@dataclasses.dataclass(frozen=True)
class ReverseRule:
    """A registered rule.

    Attributes:
        kind: one of ``KINDS``.
        transpose: ``transpose(layer, y, ctx)`` for the ``"weight"`` and
            ``"structural"`` kinds, else None.
        range_op: ``range_op(layer, x, ctx)`` for the ``"pointwise"`` kind,
            else None.
        needs_inputs: the transpose reads the forward input values
            (``ctx.inputs``), e.g. unpooling to the arg-max positions; a
            bool, or a function of the model's reversal options.
        reshapes: the op changes the memory layout (Flatten, Reshape,
            Permute), so channel-wise range ops found behind it must be
            applied in its input's shape.
        range_barrier: range ops are not collected across this layer
            (invertible preprocessing such as Rescaling).
        elementwise: the op acts elementwise (activations, adding or
            multiplying tensors of one shape or by a constant), so it may
            belong to a pointwise region (DESIGN §7).
        signal_inputs: ``signal_inputs(layer, ctx)``: the indices of the
            inputs that receive a reverse signal (default: all). The others
            are off the reverse path, e.g. a gate or an attention query.
        name: the registered function's name, for error messages.

    Raises:
        ValueError: an unknown kind, or functions that do not match it.
    """

    kind: str
    transpose: Optional[Callable] = None
    range_op: Optional[Callable] = None
    needs_inputs: Union[bool, Callable] = False
    reshapes: bool = False
    range_barrier: bool = False
    elementwise: bool = False
    signal_inputs: Optional[Callable] = None
    name: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}.")
        if (self.transpose is not None) != (self.kind in LINEAR_KINDS):
            raise ValueError(f"A {self.kind!r} rule has a transpose iff its kind is "
                             f"one of {LINEAR_KINDS}.")
        if (self.range_op is not None) != (self.kind == "pointwise"):
            raise ValueError(f"A {self.kind!r} rule has a range op iff its kind is "
                             "'pointwise'.")


@dataclasses.dataclass
class ReverseContext:
    """What a rule may know about the forward call it reverses.

    Attributes:
        input_shapes: static shapes of the forward inputs (batch ``None``).
        inputs: forward input values, when the rule asked for them.
        training: whether the reverse pass runs in training mode.
        options: the model's reversal options (names in ``OPTIONS``; read
            them with ``option``).
        statistics: the reverse BatchNormalization moving statistics
            (``keras_reversible.statistics.ReverseStatistics``), or None to
            fall back to the forward layers' own.
        update_statistics: fold this pass's batch statistics into
            ``statistics`` (training mode only).
        output_shapes: static shapes of the forward outputs.
        forward: ``forward(*inputs)``: the forward call with its other
            arguments (constants, ``axis=``...) as in the graph, returning
            the output (a list for several); None outside a graph.
        arguments: the call's ``(args, kwargs)`` with each input tensor
            replaced by its index in ``input_shapes`` (an ``InputSlot``).
        signal: indices of the inputs that receive a reverse signal (the
            rule's ``signal_inputs``, decided once when the graph is walked).
    """

    input_shapes: list
    inputs: Optional[list] = None
    training: bool = False
    options: dict = dataclasses.field(default_factory=dict)
    statistics: Optional[object] = None
    update_statistics: bool = False
    output_shapes: Optional[list] = None
    forward: Optional[Callable] = None
    arguments: Optional[tuple] = None
    signal: Optional[tuple] = None

    def option(self, name):
        """The value of reversal option ``name`` (its default when unset)."""
        return option(self.options, name)

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


# --------------------------------------------------------------------------
# The registry

_REGISTRY: dict = {}


def qualified_name(cls):
    """``"module.QualName"`` of a class: the string key of its rules."""
    return f"{cls.__module__}.{cls.__qualname__}"


def _lookup(cls):
    """The rule of ``cls`` or of its nearest base class, else None.

    The one place that knows how rules are keyed: at each class of the MRO,
    by the class, then by its qualified name.
    """
    for base in cls.__mro__:
        rule = _REGISTRY.get(base) or _REGISTRY.get(qualified_name(base))
        if rule is not None:
            return rule
    return None


def add_rule(layer_classes, rule):
    """Registers ``rule`` for each class or qualified name (replacing any)."""
    for cls in layer_classes:
        _REGISTRY[cls] = rule


def registered():
    """A copy of the registry: ``{operation class or qualified name: ReverseRule}``."""
    return dict(_REGISTRY)


def find_rule(layer):
    """The rule of ``layer`` (a layer or a raw operation), or None."""
    return _lookup(type(layer))


def rule_for(layer):
    """The rule registered for ``layer``'s class or its nearest base class.

    Raises:
        UnsupportedLayerError: no rule is registered for any class in the
            layer's MRO. The message names the layer and how to register one.
    """
    rule = _lookup(type(layer))
    if rule is not None:
        return rule
    cls = type(layer)
    what = "Layer" if isinstance(layer, keras.layers.Layer) else "Operation"
    raise UnsupportedLayerError(
        f"{what} '{layer.name}' (class {qualified_name(cls)}) has no reverse "
        "rule, so the reverse pass cannot go through it. Either register one: "
        "`@keras_reversible.register_reverse_rule("
        f"\"{qualified_name(cls)}\", kind=...)` on a function `fn(layer, y)` "
        "that maps the reverse signal at its output to its input(s) "
        "(kind='pointwise' for activations/normalisations, 'weight' for "
        "linear layers with weights, 'identity' for no-ops); or pass "
        "unknown_layers=\"linearize\" to reverse it by the transpose of its "
        "Jacobian at the forward input."
    )


def transpose_rule(*layer_classes, kind="structural", **flags):
    """Decorator: registers ``transpose(layer, y, ctx)`` for the classes.

    ``flags``: the other ``ReverseRule`` fields (``needs_inputs``,
    ``reshapes``, ``range_barrier``, ``elementwise``, ``signal_inputs``).
    """

    def register(transpose):
        add_rule(layer_classes, ReverseRule(
            kind, transpose=transpose, name=transpose.__qualname__, **flags))
        return transpose

    return register


def range_op_rule(*layer_classes, elementwise=False):
    """Decorator: registers ``range_op(layer, x, ctx)`` for pointwise classes."""

    def register(range_op):
        add_rule(layer_classes, ReverseRule(
            "pointwise", range_op=range_op, elementwise=elementwise,
            name=range_op.__qualname__))
        return range_op

    return register


def call_forward(layer, x, ctx):
    """The default range op of a pointwise layer or op: its own call.

    The call as in the graph (``ctx.forward``: a raw op keeps its constants,
    e.g. ``keras.ops.clip(x, 0, 6)``), else ``layer.call(x)``; never
    ``layer(x)``: no autocast to a mixed precision compute dtype, so the
    reverse pass stays in float32.
    """
    if ctx is not None and ctx.forward is not None:
        return ctx.forward(x)
    return layer.call(x)


# --------------------------------------------------------------------------
# The public extension point


def _with_ctx(fn):
    """``fn(layer, v[, ctx])`` as ``f(layer, v, ctx)``, decided once here."""
    params = list(inspect.signature(fn).parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) >= 3 or any(p.kind == p.VAR_POSITIONAL for p in params):
        return fn

    @functools.wraps(fn)
    def with_ctx(layer, value, ctx):
        return fn(layer, value)

    return with_ctx


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
        layer_class: a ``keras.layers.Layer`` or ``keras.Operation``
            subclass (raw ops such as ``keras.ops.pad`` leave an Operation
            in the graph), or such a class's qualified name
            (``"module.QualName"``, as the error for a layer without a rule
            prints it). Its subclasses get the rule too, unless they have
            their own.
        fn: for ``kind="weight"`` or ``"structural"``, the transpose
            ``fn(layer, y)`` or ``fn(layer, y, ctx)`` (a ``ReverseContext``):
            the reverse signal at the layer's input (a list for multi-input
            layers) from the one at its output; for ``"weight"`` it must
            return ``Aᵀ(y − b)``. For ``kind="pointwise"``, the *forward*
            range op ``fn(layer, x[, ctx])``; omit it to use ``layer.call``.
            For ``kind="identity"`` it is ignored.
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
        TypeError: ``layer_class`` is neither a Keras operation class nor a
            qualified class name.
        ValueError: unknown ``kind``.

    Example:

    ```python
    import keras
    import keras_reversible as kr

    class Scale(keras.layers.Layer):
        def call(self, x):
            return 3.0 * x

    @kr.register_reverse_rule(Scale)
    def _(layer, y):
        return 3.0 * y  # x -> 3x is its own transpose

    inputs = keras.Input((4,))
    hidden = Scale()(keras.layers.Dense(4)(inputs))
    model = kr.ReversibleModel(inputs, keras.layers.Dense(2)(hidden))
    print(model.num_constrained)  # 2: the inputs of the two Dense layers
    ```
    """
    is_class = inspect.isclass(layer_class) and issubclass(layer_class, keras.Operation)
    is_name = isinstance(layer_class, str) and "." in layer_class.strip(".")
    if not (is_class or is_name):
        raise TypeError(
            "register_reverse_rule: layer_class must be a keras.layers.Layer or "
            "keras.Operation subclass, or a qualified class name such as "
            f"'keras.src.ops.numpy.Pad', got {layer_class!r}."
        )
    if kind not in KINDS:
        raise ValueError(
            f"register_reverse_rule: kind must be one of {KINDS}, got {kind!r}."
        )

    def register(rule_fn):
        name = getattr(rule_fn, "__qualname__", None) or repr(rule_fn)
        flags = dict(needs_inputs=needs_inputs, reshapes=reshapes, range_barrier=range_barrier)
        if kind == "identity":
            rule = ReverseRule(kind, name=name, **flags)
        elif kind == "pointwise":
            range_op = call_forward if rule_fn is None else _with_ctx(rule_fn)
            rule = ReverseRule(kind, range_op=range_op, name=name, **flags)
        else:
            rule = ReverseRule(kind, transpose=_with_ctx(rule_fn), name=name, **flags)
        add_rule([layer_class], rule)
        return rule_fn

    if fn is not None:
        return register(fn)
    if kind in ("pointwise", "identity"):
        register(None)
    return register


# --------------------------------------------------------------------------
# Transposes of linear functions


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


def _forward(layer, ctx):
    """``ctx.forward`` or, outside a graph, the layer's ``call`` on its inputs."""
    if ctx.forward is not None:
        return ctx.forward
    if len(ctx.input_shapes) == 1:
        return layer.call
    return lambda *xs: layer.call(list(xs))


def transpose_of_call(layer, y, ctx):
    """Exact transpose of a parameter-free linear op: the VJP of its call.

    ``y`` is a list for an op with several outputs (``split``, ``unstack``).
    """
    n = len(ctx.input_shapes)
    primals = [ctx.zeros_like_input(i, _first(y)) for i in range(n)]
    xs = vjp(_forward(layer, ctx), primals, y)
    return xs[0] if n == 1 else xs


def transpose_of_affine_call(layer, y, ctx):
    """Transpose of an affine op ``f(x) = A x + c``: ``Aᵀ(y − c)``.

    The constant ``c = f(0)`` is a bias (``x + 3.0``), subtracted as the
    Dense rule subtracts ``b``; for a linear op ``c`` is zero.
    """
    n = len(ctx.input_shapes)
    forward = _forward(layer, ctx)
    primals = [ctx.zeros_like_input(i, _first(y)) for i in range(n)]
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        for p in primals:
            tape.watch(p)
        out = forward(*primals)
    centred = tf.nest.map_structure(lambda a, b: a - tf.stop_gradient(b), y, out)
    xs = tape.gradient(out, primals, output_gradients=centred,
                       unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return xs[0] if n == 1 else xs


def _first(y):
    return y[0] if isinstance(y, (list, tuple)) else y
