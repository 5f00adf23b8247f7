"""The reverse program: a functional Keras graph walked backwards, once.

``ReverseGraph`` walks the graph of a functional model from the tensor that
starts the reverse pass (``I_r``) back to the model inputs, at construction
time. It records

* the constrained points ``L_1 … L_n``: the distinct input tensors of the
  weight layers on that path, in forward (topological) order;
* the *range ops* of each constrained point: the pointwise ops (BN,
  activations, a weight layer's fused activation) found by walking back from
  ``L_m`` through shape-only ops to the previous weight layer, a merge, or
  the model input (then the ``input_range`` op) — DESIGN §1;
* a flat list of steps (one per layer call, reverse topological order).

``run`` then executes the steps on tensors; no graph walking happens inside a
train step, only the rules' TensorFlow ops.
"""

import dataclasses
import sys
import warnings
from typing import Callable, Optional

import keras
import tensorflow as tf

from keras_reversible import nodes, regions, registry
from keras_reversible.nodes import key, producer


@dataclasses.dataclass(frozen=True)
class RangeOp:
    """A pointwise op re-applied forward at a constrained point.

    Attributes:
        fn: ``fn(x, ctx)``.
        view: static non-batch shape to reshape ``x`` into before applying
            (set when a Flatten/Reshape lies between the op and ``L_m``).
        name: what it is, for summaries.
        layer: the forward layer it re-applies, for pointwise layers.
    """

    fn: Callable
    view: Optional[tuple]
    name: str
    layer: Optional[keras.layers.Layer] = None

    def __call__(self, x, ctx):
        # A layer's call may compute in its mixed-precision dtype: the reverse pass stays in x's.
        if self.view is None or tuple(x.shape[1:]) == self.view:
            return tf.cast(self.fn(x, ctx), x.dtype)
        shape = tf.shape(x)
        y = self.fn(tf.reshape(x, [-1, *self.view]), ctx)
        return tf.reshape(tf.cast(y, x.dtype), shape)


@dataclasses.dataclass(frozen=True)
class Step:
    """One forward call (of a layer, a raw op or a pointwise region), reversed.

    Attributes:
        layer: the layer or operation (a ``regions.Region`` for a region).
        rule: its reverse rule.
        input_keys, output_keys: keys of its input and output tensors.
        input_shapes, output_shapes: their static shapes.
        tap_inputs: the rule reads the forward input values.
        signal: indices of the inputs that receive a reverse signal.
        forward: ``forward(*inputs)``, the call as in the graph.
        arguments: the call's ``(args, kwargs)`` with ``nodes.InputSlot``s.
    """

    layer: object
    rule: registry.ReverseRule
    input_keys: tuple
    output_keys: tuple
    input_shapes: list
    output_shapes: list
    tap_inputs: bool
    signal: tuple
    forward: Optional[Callable] = None
    arguments: Optional[tuple] = None

    def context(self, **kwargs):
        """A ``ReverseContext`` for this step."""
        return registry.ReverseContext(
            input_shapes=self.input_shapes, output_shapes=self.output_shapes,
            forward=self.forward, arguments=self.arguments, signal=self.signal, **kwargs)


def _linearized_transpose(layer, y, ctx):
    """The transpose of the layer's Jacobian at its forward input (inference mode)."""
    xs = registry.vjp(ctx.forward, [ctx.forward_input(i, registry._first(y))
                                    for i in range(len(ctx.input_shapes))], y)
    return xs[0] if len(xs) == 1 else xs


LINEARIZED = registry.ReverseRule(
    "structural", transpose=_linearized_transpose, needs_inputs=True, range_barrier=True,
    name="linearized")


def _is_floating(tensor):
    return "float" in str(tensor.dtype)


def _is_linear_activation(fn):
    return fn is None or fn is keras.activations.linear or getattr(fn, "__name__", "") == "linear"


def _range_op(rule, layer, node):
    """``fn(x, ctx)``: the pointwise rule's range op with the node's call as ``ctx.forward``."""
    forward = nodes.call_function(layer, node)

    def range_op(x, ctx):
        return rule.range_op(layer, x, dataclasses.replace(ctx, forward=forward))

    return range_op


def _activation_range_op(layer, view):
    activation = layer.activation
    return RangeOp(lambda x, ctx: activation(x), view, f"{layer.name}.activation")


class ReverseGraph:
    """The reverse pass of a functional model, as a flat program.

    Args:
        model: a functional ``keras.Model``.
        start: the KerasTensor whose value starts the reverse pass (``I_r``),
            in a graph without nested models (``nesting.flatten``).
        input_range: callable applied to ``L'`` at the model input, or None.
        options: reversal options (``registry.OPTIONS``).

    Raises:
        registry.UnsupportedLayerError: a layer on the path has no rule
            (with ``unknown_layers="error"``).
    """

    def __init__(self, model, start, input_range=None, options=None):
        self.model = model
        self.start = start
        self.input_range = input_range
        self.options = dict(options or {})
        self.tensors = {}  # key -> KerasTensor (keeps ids alive and unique)
        self.regions = {}  # id(node) of a region's last op -> Region
        self.linearized = []  # layers reversed by their Jacobian's transpose
        self.steps = self._walk(start)
        self.tensors[key(start)] = start

        # Constrained points: distinct floating-point weight-layer inputs,
        # forward order (an Embedding's integer ids are not a point).
        self.constrained = []
        self.weight_layers = []
        seen = set()
        for step in reversed(self.steps):
            if step.rule.kind != "weight":
                continue
            self.weight_layers.append(step.layer)
            tensor = self.tensors[step.input_keys[step.signal[0]]]
            if key(tensor) not in seen and _is_floating(tensor):
                seen.add(key(tensor))
                self.constrained.append(key(tensor))
        self.range_ops = {k: self.collect_range_ops(self.tensors[k]) for k in self.constrained}
        self.input_keys = [key(t) for t in keras.tree.flatten(model.inputs)]
        for t in keras.tree.flatten(model.inputs):
            self.tensors[key(t)] = t

    # ------------------------------------------------------------------
    # Construction

    def _rule(self, layer):
        rule = registry.find_rule(layer)
        if rule is not None:
            return rule
        if isinstance(layer, keras.Model):
            raise registry.UnsupportedLayerError(
                f"Layer '{layer.name}' is a nested {type(layer).__name__} that is not a "
                "functional graph (a subclassed model); the reverse pass cannot walk "
                "into it.")
        if registry.option(self.options, "unknown_layers") != "linearize":
            registry.rule_for(layer)  # raises, naming the layer
        if layer not in self.linearized:
            self.linearized.append(layer)
            warnings.warn(
                f"{type(layer).__name__} '{layer.name}' has no reverse rule: the reverse "
                "pass uses the transpose of its Jacobian at the forward input "
                "(unknown_layers='linearize'), exact only for a linear layer.", stacklevel=4)
        return LINEARIZED

    def _step(self, layer, node, rule):
        ctx = registry.ReverseContext(
            input_shapes=[tuple(t.shape) for t in node.input_tensors],
            output_shapes=[tuple(t.shape) for t in node.output_tensors],
            options=self.options, arguments=nodes.argument_slots(node))
        signal = (tuple(rule.signal_inputs(layer, ctx)) if rule.signal_inputs
                  else tuple(range(len(node.input_tensors))))
        needs = rule.needs_inputs
        needs = needs(self.options) if callable(needs) else needs
        dynamic = any(d is None for t in node.input_tensors for d in t.shape[1:])
        for t in (*node.input_tensors, *node.output_tensors):
            self.tensors[key(t)] = t
        return Step(
            layer=layer, rule=rule,
            input_keys=tuple(key(t) for t in node.input_tensors),
            output_keys=tuple(key(t) for t in node.output_tensors),
            input_shapes=ctx.input_shapes, output_shapes=ctx.output_shapes,
            tap_inputs=bool(needs or dynamic), signal=signal,
            forward=nodes.call_function(layer, node), arguments=ctx.arguments)

    def _region_step(self, region):
        for t in (region.source, region.output):
            self.tensors[key(t)] = t
        rule = registry.ReverseRule(
            "pointwise", range_op=lambda layer, x, ctx: layer.apply(x), elementwise=True,
            name="pointwise region")
        return Step(layer=region, rule=rule, input_keys=(key(region.source),),
                    output_keys=(key(region.output),),
                    input_shapes=[tuple(region.source.shape)],
                    output_shapes=[tuple(region.output.shape)], tap_inputs=False, signal=(0,))

    def _walk(self, start):
        """The steps upstream of ``start`` along the reverse signal, outputs first.

        The walk follows only the inputs a rule sends a signal to (not a
        gate, not an attention query), and takes a pointwise region as one
        step.
        """
        order, visited = [], set()

        def visit(tensor):
            layer, node = producer(tensor)
            if node is None:
                raise ValueError(
                    f"Tensor {tensor} has no Keras history; is the model functional?"
                )
            if id(node) in visited or not node.input_tensors:
                return  # done, or a model input
            visited.add(id(node))
            region = regions.find(tensor)
            if region is not None:
                self.regions[id(node)] = region
                step = self._region_step(region)
            else:
                step = self._step(layer, node, self._rule(layer))
            for i in step.signal:
                visit(self.tensors[step.input_keys[i]])
            order.append(step)

        # Deep models (DenseNet-121: ~430 layers) exceed the default limit.
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, 20000))
        try:
            visit(start)
        finally:
            sys.setrecursionlimit(limit)
        return order[::-1]

    def collect_range_ops(self, tensor):
        """Range ops of the constrained point ``tensor``, in forward order."""
        ops, view, cur = [], None, tensor
        while True:
            layer, node = producer(cur)
            if node is None or not node.input_tensors:
                if self.input_range is not None:
                    fn = self.input_range
                    ops.append(RangeOp(lambda x, ctx: fn(x), view, "input_range"))
                break
            region = self.regions.get(id(node))
            if region is not None:
                ops.append(RangeOp(lambda x, ctx, r=region: r.apply(x), view, region.name))
                cur = region.source
                continue
            rule = self._rule(layer)
            single = len(node.input_tensors) == 1 and len(node.output_tensors) == 1
            if rule.kind == "pointwise" and single:
                ops.append(RangeOp(_range_op(rule, layer, node), view, layer.name, layer))
            elif rule.kind == "identity" and single:
                pass
            elif rule.kind == "structural" and single and not rule.range_barrier:
                if rule.reshapes:
                    view = tuple(node.input_tensors[0].shape[1:])
            else:
                if rule.kind == "weight" and not _is_linear_activation(
                    getattr(layer, "activation", None)
                ):
                    ops.append(_activation_range_op(layer, view))
                break
            cur = node.input_tensors[0]
        ops.reverse()
        return ops

    # ------------------------------------------------------------------
    # Execution

    def tap_tensors(self):
        """Forward tensors the reverse pass and the losses need, by key.

        Every constrained point is tapped (whatever the depth): these tensors
        are computed by the forward pass and kept for backprop anyway.
        """
        keys = [key(self.start), *self.constrained]
        for step in self.steps:
            if step.tap_inputs:
                keys.extend(step.input_keys)
        unique = list(dict.fromkeys(keys))
        return unique, [self.tensors[k] for k in unique]

    def run(self, start_value, taps, training=False, statistics=None,
            update_statistics=False):
        """Executes the reverse pass.

        Args:
            start_value: value of ``I_r``.
            taps: dict key -> forward value (from ``tap_tensors``).
            training: training mode (reverse BatchNormalization normalises
                with batch statistics).
            statistics: reverse BatchNormalization moving statistics
                (``statistics.ReverseStatistics``), or None.
            update_statistics: fold the batch statistics into them.

        Returns:
            dict key -> reverse value for every constrained point and model
            input reached.
        """
        return self._execute(start_value, taps, training, statistics, update_statistics)

    def _execute(self, start_value, taps, training=False, statistics=None,
                 update_statistics=False):
        pending = {key(self.start): [tf.cast(start_value, tf.float32)]}
        final = {}
        batch = tf.shape(start_value)[:1]

        def finalize(k, shape=None):
            if k in final:
                return final[k]
            if k not in pending:  # an output off the reverse path (split, unstack)
                return tf.zeros(tf.concat([batch, shape[1:]], 0), tf.float32)
            parts = pending.pop(k)
            value = parts[0] if len(parts) == 1 else tf.add_n(parts)
            for op in self.range_ops.get(k, ()):
                value = op(value, ctx_for_range)
            final[k] = value
            return value

        ctx_for_range = registry.ReverseContext(
            [], training=training, options=self.options, statistics=statistics,
            update_statistics=update_statistics and training)
        for step in self.steps:
            ys = [finalize(k, shape) for k, shape in zip(step.output_keys, step.output_shapes)]
            if step.rule.kind in ("pointwise", "identity"):
                # Identity in the walk: pointwise ops are re-applied only as
                # range ops, at the constrained points (DESIGN §1).
                pending.setdefault(step.input_keys[0], []).append(ys[0])
                continue
            ctx = step.context(
                inputs=[taps[k] for k in step.input_keys] if step.tap_inputs else None,
                training=training,
                options=self.options,
            )
            xs = step.rule.transpose(step.layer, ys[0] if len(ys) == 1 else ys, ctx)
            if not isinstance(xs, (list, tuple)):
                xs = [xs]
            if len(xs) != len(step.input_keys):
                raise ValueError(
                    f"The reverse rule of layer '{step.layer.name}' returned "
                    f"{len(xs)} tensors for {len(step.input_keys)} inputs."
                )
            for i in step.signal:
                x, shape = xs[i], step.input_shapes[i]
                if x is None:
                    raise ValueError(
                        f"The reverse rule {step.rule.name!r} of layer '{step.layer.name}' "
                        f"returned None for input {i}, which receives a reverse signal.")
                if not _is_floating(self.tensors[step.input_keys[i]]):
                    continue  # an Embedding's ids: scores over the vocabulary
                if not tf.TensorShape(x.shape[1:]).is_compatible_with(shape[1:]):
                    raise ValueError(
                        f"The reverse rule {step.rule.name!r} of layer "
                        f"'{step.layer.name}' ({type(step.layer).__name__}) returned "
                        f"shape {tuple(x.shape)} for input {i}, whose shape is "
                        f"{tuple(shape)}; a reverse rule must return the shape of "
                        "the layer's input."
                    )
            for i in step.signal:
                pending.setdefault(step.input_keys[i], []).append(xs[i])
        for k in list(pending):
            finalize(k)
        return final

    def check(self):
        """Traces the program once on symbolic inputs: rules' shapes are checked.

        Raises:
            ValueError: a rule returned a tensor whose shape differs from its
                layer's input (the message names the layer, the rule and both
                shapes), or another tracing error of a rule.
        """
        keys, tensors = self.tap_tensors()
        keys = keys + [k for k in self.input_keys if k not in keys]
        tensors = [self.tensors[k] for k in keys]
        specs = {str(k): tf.TensorSpec(t.shape, t.dtype) for k, t in zip(keys, tensors)}

        def trace(values):
            taps = {int(k): v for k, v in values.items()}
            final = self._execute(taps[key(self.start)], taps)
            return [final[k] for k in sorted(final)]

        tf.function(trace, autograph=False).get_concrete_function(specs)

    def range_layers(self):
        """The forward layers re-applied as range ops, in program order."""
        ops = [op for k in self.constrained for op in self.range_ops[k]]
        return list({id(op.layer): op.layer for op in ops if op.layer is not None}.values())

    def describe(self):
        """A readable listing of the reverse program."""
        start_layer, _ = producer(self.start)
        lines = [f"reverse pass from the output of '{start_layer.name}' (I_r)"]
        for step in self.steps:
            kind = "linearized" if step.rule is LINEARIZED else step.rule.kind
            lines.append(f"  {step.layer.name:<28} {type(step.layer).__name__:<22} {kind}")
        lines.append("constrained points (forward order) and their range ops:")
        for m, k in enumerate(self.constrained, start=1):
            ops = ", ".join(op.name for op in self.range_ops[k]) or "identity"
            lines.append(f"  L_{m}: {tuple(self.tensors[k].shape)}  range ops: {ops}")
        if self.linearized:
            names = ", ".join(f"'{layer.name}'" for layer in self.linearized)
            lines.append(f"linearized (no reverse rule; the transpose of the Jacobian): {names}")
        return "\n".join(lines)
