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
import functools
import sys
from typing import Callable, Optional

import keras
import tensorflow as tf

from keras_reversible import registry


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
        if self.view is None or tuple(x.shape[1:]) == self.view:
            return self.fn(x, ctx)
        shape = tf.shape(x)
        y = self.fn(tf.reshape(x, [-1, *self.view]), ctx)
        return tf.reshape(y, shape)


@dataclasses.dataclass(frozen=True)
class Step:
    """One forward layer call, reversed."""

    layer: keras.layers.Layer
    rule: registry.ReverseRule
    input_keys: tuple
    output_keys: tuple
    input_shapes: list
    tap_inputs: bool


def key(tensor):
    """Identity of a symbolic tensor in the graph."""
    return id(tensor)


# Keras has no public API for a functional graph's nodes. The three readers
# below are the only places that touch its private attributes
# (``KerasTensor._keras_history``, ``Operation._inbound_nodes``);
# tests/test_graph_internals.py pins the behaviour they rely on.


def producer(tensor):
    """(layer, node) that produced a KerasTensor; ``(None, None)`` for none."""
    history = getattr(tensor, "_keras_history", None)
    if history is None or history.operation is None:
        return None, None
    return history.operation, history.operation._inbound_nodes[history.node_index]


def calls(layer):
    """The nodes of ``layer``'s calls on symbolic tensors (its functional uses)."""
    return [node for node in layer._inbound_nodes if node.input_tensors]


def is_functional_graph(model):
    """True for a Keras model whose outputs trace back through a functional graph.

    Functional and Sequential models qualify; a subclassed model (no symbolic
    inputs/outputs) does not.
    """
    if not isinstance(model, keras.Model) or not getattr(model, "inputs", None):
        return False
    outputs = keras.tree.flatten(getattr(model, "outputs", None) or [])
    return bool(outputs) and all(producer(t)[0] is not None for t in outputs)


def _is_linear_activation(fn):
    return fn is None or fn is keras.activations.linear or getattr(fn, "__name__", "") == "linear"


def _activation_range_op(layer, view):
    activation = layer.activation
    return RangeOp(lambda x, ctx: activation(x), view, f"{layer.name}.activation")


class ReverseGraph:
    """The reverse pass of a functional model, as a flat program.

    Args:
        model: a functional ``keras.Model``.
        start: the KerasTensor whose value starts the reverse pass (``I_r``).
        input_range: callable applied to ``L'`` at the model input, or None.
        options: rule options (``max_pool_reverse``, ``upsample_reverse``).

    Raises:
        registry.UnsupportedLayerError: a layer on the path has no rule.
        ValueError: a nested model or a multi-output layer is on the path.
    """

    def __init__(self, model, start, input_range=None, options=None):
        self.model = model
        self.start = start
        self.input_range = input_range
        self.options = dict(options or {})
        self.tensors = {}  # key -> KerasTensor (keeps ids alive and unique)
        order = self._topological_nodes(start)
        self.steps = []
        weight_inputs = []
        for layer, node in order:
            if not node.input_tensors:
                continue  # an InputLayer
            rule = self._rule(layer)
            if len(node.output_tensors) != 1:
                raise ValueError(
                    f"Layer '{layer.name}' returns {len(node.output_tensors)} "
                    "tensors; the reverse pass supports single-output layers."
                )
            needs = rule.needs_inputs
            needs = needs(self.options) if callable(needs) else needs
            dynamic = any(d is None for t in node.input_tensors for d in t.shape[1:])
            for t in (*node.input_tensors, *node.output_tensors):
                self.tensors[key(t)] = t
            self.steps.append(Step(
                layer=layer,
                rule=rule,
                input_keys=tuple(key(t) for t in node.input_tensors),
                output_keys=tuple(key(t) for t in node.output_tensors),
                input_shapes=[tuple(t.shape) for t in node.input_tensors],
                tap_inputs=bool(needs or dynamic),
            ))
            if rule.kind == "weight":
                weight_inputs.append((layer, node.input_tensors[0]))
        self.steps.reverse()
        self.tensors[key(start)] = start

        # Constrained points: distinct weight-layer inputs, forward order.
        self.constrained = []
        self.weight_layers = []
        seen = set()
        for layer, tensor in weight_inputs:
            self.weight_layers.append(layer)
            if key(tensor) not in seen:
                seen.add(key(tensor))
                self.constrained.append(key(tensor))
        self.range_ops = {k: self.collect_range_ops(self.tensors[k]) for k in self.constrained}
        self.input_keys = [key(t) for t in keras.tree.flatten(model.inputs)]
        for t in keras.tree.flatten(model.inputs):
            self.tensors[key(t)] = t

    # ------------------------------------------------------------------
    # Construction

    def _rule(self, layer):
        if isinstance(layer, keras.Model):
            raise registry.UnsupportedLayerError(
                f"Layer '{layer.name}' is a nested model "
                f"({type(layer).__name__}); the reverse pass walks one flat "
                "functional graph. Build the model from the nested model's "
                "layers directly (e.g. call its layers on your tensors)."
            )
        return registry.rule_for(layer)

    @staticmethod
    def _topological_nodes(start):
        """(layer, node) pairs upstream of ``start``, inputs first."""
        order, visited = [], set()

        def visit(tensor):
            layer, node = producer(tensor)
            if node is None:
                raise ValueError(
                    f"Tensor {tensor} has no Keras history; is the model functional?"
                )
            if id(node) in visited:
                return
            visited.add(id(node))
            for parent in node.input_tensors:
                visit(parent)
            order.append((layer, node))

        # Deep models (DenseNet-121: ~430 layers) exceed the default limit.
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, 10000))
        try:
            visit(start)
        finally:
            sys.setrecursionlimit(limit)
        return order

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
            rule = self._rule(layer)
            single = len(node.input_tensors) == 1
            if rule.kind == "pointwise" and single:
                ops.append(RangeOp(functools.partial(rule.range_op, layer), view, layer.name, layer))
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

        def finalize(k):
            if k in final:
                return final[k]
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
            ys = [finalize(k) for k in step.output_keys]
            if step.rule.kind in ("pointwise", "identity"):
                # Identity in the walk: pointwise ops are re-applied only as
                # range ops, at the constrained points (DESIGN §1).
                pending.setdefault(step.input_keys[0], []).append(ys[0])
                continue
            ctx = registry.ReverseContext(
                input_shapes=step.input_shapes,
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
            for i, (x, shape) in enumerate(zip(xs, step.input_shapes)):
                if not tf.TensorShape(x.shape[1:]).is_compatible_with(shape[1:]):
                    raise ValueError(
                        f"The reverse rule {step.rule.name!r} of layer "
                        f"'{step.layer.name}' ({type(step.layer).__name__}) returned "
                        f"shape {tuple(x.shape)} for input {i}, whose shape is "
                        f"{tuple(shape)}; a reverse rule must return the shape of "
                        "the layer's input."
                    )
            for k, x in zip(step.input_keys, xs):
                pending.setdefault(k, []).append(x)
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
            lines.append(
                f"  {step.layer.name:<28} {type(step.layer).__name__:<22} "
                f"{step.rule.kind}"
            )
        lines.append("constrained points (forward order) and their range ops:")
        for m, k in enumerate(self.constrained, start=1):
            ops = ", ".join(op.name for op in self.range_ops[k]) or "identity"
            lines.append(f"  L_{m}: {tuple(self.tensors[k].shape)}  range ops: {ops}")
        return "\n".join(lines)
