"""Reading a functional Keras graph: who produced a tensor, and how to call it again.

Keras has no public API for a functional graph's nodes. The readers below
are the only places in the package that touch its private attributes
(``KerasTensor._keras_history``, ``Operation._inbound_nodes``,
``Node.arguments``); tests/test_graph_internals.py pins the behaviour they
rely on. A *node* is one call of an operation (a layer or a raw
``keras.ops`` operation) on symbolic tensors.
"""

import dataclasses

import keras


def key(tensor):
    """Identity of a symbolic tensor in the graph."""
    return id(tensor)


def producer(tensor):
    """(operation, node) that produced a KerasTensor; ``(None, None)`` for none."""
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


@dataclasses.dataclass(frozen=True)
class InputSlot:
    """Where input tensor ``index`` of a node sits in its call's arguments."""

    index: int


def arguments(node):
    """The node's call ``(args, kwargs)``, its input tensors as they were."""
    return node.arguments.args, node.arguments.kwargs


def _replace_tensors(node, values):
    """``(args, kwargs)`` with the node's input tensors replaced by ``values``, in order."""
    structure = arguments(node)
    flat = list(keras.tree.flatten(structure))
    slots = iter(values)
    flat = [next(slots) if isinstance(a, keras.KerasTensor) else a for a in flat]
    return keras.tree.pack_sequence_as(structure, flat)


def argument_slots(node):
    """The node's ``(args, kwargs)`` with input tensor ``i`` replaced by ``InputSlot(i)``."""
    return _replace_tensors(node, [InputSlot(i) for i in range(len(node.input_tensors))])


def call_function(operation, node):
    """``f(*inputs)``: ``operation``'s computation at ``node`` on new input values.

    The node's other arguments (constants, ``axis=``...) are kept. Layers run
    their ``call`` (no autocast: the reverse pass stays in float32; no
    ``training`` argument: inference mode). Returns the output, or a list for
    several outputs.
    """
    call = operation.call

    def forward(*values):
        args, kwargs = _replace_tensors(node, values)
        outputs = keras.tree.flatten(call(*args, **kwargs))
        return outputs[0] if len(outputs) == 1 else outputs

    forward.__name__ = f"call_of_{operation.name}"
    return forward


def call_again(operation, node, values):
    """Calls ``operation`` on new symbolic ``values`` for its node's inputs: a new node."""
    args, kwargs = _replace_tensors(node, values)
    return keras.tree.flatten(operation(*args, **kwargs))

