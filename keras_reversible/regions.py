"""Pointwise regions: elementwise ops that together are one pointwise op (DESIGN §7).

A connected group of elementwise operations (layers or raw ``keras.ops``)
whose only non-constant input is one tensor ``x`` and whose result ``y`` has
``x``'s shape is one pointwise op ``y = f(x)``: hard-swish written as
``x * relu6(x + 3) / 6``, swish as ``x * sigmoid(x)``. The reverse walk
treats it like ``Activation("hard_swish")``: the identity, re-applied
forward as a range op.
"""

import dataclasses

import keras

from keras_reversible import nodes, registry


@dataclasses.dataclass(frozen=True)
class Region:
    """``output = f(source)`` computed by ``calls`` (``(operation, node)``, forward order)."""

    source: keras.KerasTensor
    output: keras.KerasTensor
    calls: tuple

    @property
    def name(self):
        return "pointwise(" + ", ".join(op.name for op, _ in self.calls) + ")"

    def apply(self, x):
        """``f(x)``: the region's operations re-applied to the value ``x``."""
        values = {nodes.key(self.source): x}
        for op, node in self.calls:
            out = nodes.call_function(op, node)(*[values[nodes.key(t)] for t in node.input_tensors])
            outs = out if isinstance(out, list) else [out]
            values.update(zip(map(nodes.key, node.output_tensors), outs))
        return values[nodes.key(self.output)]


def _elementwise(op, node):
    if node is None or not node.input_tensors or len(node.output_tensors) != 1:
        return False
    rule = registry.find_rule(op)
    return rule is not None and rule.elementwise


def find(tensor):
    """The pointwise region whose output is ``tensor``, or None.

    The region is the cone of elementwise operations above ``tensor``; it is
    one when the cone has a single source tensor of ``tensor``'s shape and
    at least one operation combining two tensors (a lone chain such as
    ``relu(x + 3)`` stays op by op: a bias, then an activation).
    """
    op, node = nodes.producer(tensor)
    if not _elementwise(op, node):
        return None
    members, sources, combines = {}, {}, False
    stack = [tensor]
    while stack:
        t = stack.pop()
        op, node = nodes.producer(t)
        if not _elementwise(op, node):
            sources[nodes.key(t)] = t
            continue
        if id(node) in members:
            continue
        members[id(node)] = (op, node)
        inputs = {nodes.key(x): x for x in node.input_tensors}
        combines = combines or len(inputs) > 1
        stack.extend(inputs.values())
    if not combines or len(sources) != 1:
        return None
    (source,) = sources.values()
    if tuple(source.shape[1:]) != tuple(tensor.shape[1:]):
        return None
    return Region(source, tensor, _forward_order(tensor, members))


def _forward_order(output, members):
    order, seen = [], set()

    def visit(t):
        op, node = nodes.producer(t)
        if node is None or id(node) not in members or id(node) in seen:
            return
        seen.add(id(node))
        for parent in node.input_tensors:
            visit(parent)
        order.append((op, node))

    visit(output)
    return tuple(order)
