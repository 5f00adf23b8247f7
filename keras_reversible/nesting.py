"""Nested models walked as if the graph were flat (DESIGN §7).

A functional or Sequential model used as a layer (a task model calling its
backbone, ConvNeXt's ``Sequential`` stem) hides its layers from the outer
graph. ``flatten`` calls every operation again on the outer tensors, walking
into nested models, so that the new graph holds the same layers (the same
variables) with the nested models' inputs and outputs identified with the
outer tensors. The reverse pass, its constrained points and range ops are
then those of the flattened graph.
"""

import sys

import keras

from keras_reversible import nodes


def _nested(operation):
    return isinstance(operation, keras.Model) and nodes.is_functional_graph(operation)


def has_nested_models(outputs):
    """Whether a nested functional or Sequential model produces any tensor upstream of ``outputs``."""
    seen, stack = set(), list(outputs)
    while stack:
        op, node = nodes.producer(stack.pop())
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if _nested(op):
            return True
        stack.extend(node.input_tensors)
    return False


def flatten(inputs, outputs):
    """The graph from ``inputs`` to ``outputs`` with every nested model inlined.

    Args:
        inputs: the model's input KerasTensors (kept as they are).
        outputs: KerasTensors of the model's graph.

    Returns:
        A dict ``key(tensor) -> tensor of the flat graph`` for every tensor
        of the outer graph upstream of ``outputs``, inputs included.

    Raises:
        ValueError: a nested model called on inputs that do not match its own.
    """
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20000))
    try:
        return _inline({nodes.key(t): t for t in inputs}, outputs)
    finally:
        sys.setrecursionlimit(limit)


def _inline(mapping, outputs):
    """Fills ``mapping`` (tensor key -> flat tensor) up to ``outputs``; returns it."""

    def value(tensor):
        k = nodes.key(tensor)
        if k not in mapping:
            build(tensor)
        return mapping[k]

    def build(tensor):
        op, node = nodes.producer(tensor)
        if node is None or not node.input_tensors:
            raise ValueError(
                f"Tensor {tensor.name!r} is an input the model was not built from; "
                "the graph cannot be flattened.")
        values = [value(t) for t in node.input_tensors]
        if _nested(op):
            inner_inputs = keras.tree.flatten(op.inputs)
            if len(inner_inputs) != len(values):
                raise ValueError(
                    f"Nested model '{op.name}' has {len(inner_inputs)} inputs but is "
                    f"called on {len(values)} tensors; the reverse pass cannot walk into it.")
            inner = _inline(dict(zip(map(nodes.key, inner_inputs), values)),
                            keras.tree.flatten(op.outputs))
            new = [inner[nodes.key(t)] for t in keras.tree.flatten(op.outputs)]
        else:
            new = nodes.call_again(op, node, values)
        mapping.update(zip(map(nodes.key, node.output_tensors), new))

    for t in outputs:
        value(t)
    return mapping
