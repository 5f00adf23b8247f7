"""The private Keras attributes the package relies on, pinned, and read in nodes.py only.

Keras has no public API for a functional graph's nodes; ``nodes.producer``,
``nodes.calls`` and ``nodes.is_functional_graph`` read them. If a Keras
release changes them, these tests say so before any reverse pass does.
"""

import pathlib
import re

import keras

import keras_reversible as kr
from keras_reversible import nodes

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("keras_reversible", "zoo")


def _sources():
    for package in PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))


def test_producer_and_calls_follow_the_functional_graph():
    inputs = keras.Input((4,), name="x")
    dense = keras.layers.Dense(3, name="shared")
    a = dense(inputs)
    b = dense(keras.layers.Dense(4, name="pre")(inputs))
    outputs = keras.layers.Add(name="add")([a, b])
    keras.Model(inputs, outputs)

    layer, node = nodes.producer(outputs)
    assert layer.name == "add"
    assert [nodes.producer(t)[0].name for t in node.input_tensors] == ["shared", "shared"]
    assert node.output_tensors[0] is outputs
    assert nodes.producer(inputs)[0].__class__.__name__ == "InputLayer"
    assert nodes.producer(keras.ops.ones((2,))) == (None, None)  # a concrete tensor
    # Two symbolic calls of the shared layer, in call order.
    calls = nodes.calls(dense)
    assert len(calls) == 2 and calls[0].output_tensors[0] is a
    assert calls[1].output_tensors[0] is b


def test_is_functional_graph():
    inputs = keras.Input((4,))
    functional = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    sequential = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    subclassed = Subclassed()
    subclassed(keras.ops.ones((1, 4)))
    assert nodes.is_functional_graph(functional)
    assert nodes.is_functional_graph(sequential)
    assert not nodes.is_functional_graph(subclassed)
    assert not nodes.is_functional_graph(keras.layers.Dense(2))
    assert isinstance(kr.make_reversible(sequential), kr.ReversibleModel)


def test_no_private_keras_import_in_the_package():
    pattern = re.compile(r"^\s*(from|import)\s+keras\.src\b|keras\.src\.[a-z_.]+\s+import",
                         re.MULTILINE)
    offenders = [str(p.relative_to(ROOT)) for p in _sources() if pattern.search(p.read_text())]
    assert offenders == [], f"keras.src imported in {offenders}: use the public Keras API"


def test_graph_internals_are_read_in_nodes_py_only():
    private = re.compile(r"\._inbound_nodes\b|\._keras_history\b")
    offenders = [str(p.relative_to(ROOT)) for p in _sources()
                 if p.name != "nodes.py" and private.search(p.read_text())]
    assert offenders == [], f"functional-graph internals read outside nodes.py: {offenders}"
