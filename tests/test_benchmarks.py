"""The benchmark scripts: the hand-written reference, the measuring helpers, the step-time script end to end.

No test here checks a timing: speed is measured by the scripts, not asserted.
"""

import importlib.util
import json
import pathlib
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_reversible as kr
import zoo
from example_support import import_from

measure = import_from("benchmarks", "measure")

ROOT = pathlib.Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _load(script):
    spec = importlib.util.spec_from_file_location(script, ROOT / "benchmarks" / f"{script}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_handwritten_racecar_matches_reversible_model():
    """Same weights, same batch: same task and racecar losses, same SGD update."""
    hw = _load("handwritten_racecar_mnist")
    lr = 0.05
    model = zoo.racecar_mnist_cnn(racecar_weight=1e-2)  # paper: l2_loss, relu, from conv3
    model.compile(keras.optimizers.SGD(lr), CE)
    net = hw.HandwrittenRacecarCNN(racecar_weight=1e-2, learning_rate=lr)
    net.set_from(model)
    rng = np.random.default_rng(0)
    x = rng.random((8, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, 8).astype(np.int32)

    task, racecar = net.train_step(tf.constant(x), tf.constant(y))
    logs = model.train_on_batch(x, y, return_dict=True)
    assert float(racecar) > 1e-3  # the reverse pass contributes
    np.testing.assert_allclose(logs["task_loss"], float(task), rtol=1e-5)
    np.testing.assert_allclose(logs["racecar_loss"], float(racecar), rtol=1e-5)
    for var, layer, attr in zip(net.params, ["conv1", "conv1", "conv2", "conv2", "conv3",
                                             "conv3", "fc", "fc"], ["kernel", "bias"] * 4):
        np.testing.assert_allclose(getattr(model.get_layer(layer), attr).numpy(), var.numpy(),
                                   rtol=1e-4, atol=1e-6, err_msg=f"{layer}.{attr}")


def test_make_reversible_with_latent_generation_trains():
    """make_reversible passes `outputs` as a list; the RNL term must still see one tensor."""
    base = zoo.racecar_mnist_cnn()
    model = kr.make_reversible(base, **{**base.reversal_settings, "latent_generation": True})
    model.compile("sgd", CE)
    x = np.random.default_rng(1).random((4, 28, 28, 1), dtype=np.float32)
    logs = model.train_on_batch(x, np.arange(4), return_dict=True)
    assert logs["latent_loss"] > 0
    assert logs["loss"] == pytest.approx(
        logs["task_loss"] + logs["racecar_loss"] + logs["latent_loss"], rel=1e-5)


def test_float_ops_counts_a_dense_layer_and_its_transpose():
    dense = keras.layers.Dense(5)
    dense.build((None, 7))
    spec = [tf.TensorSpec((3, 7), tf.float32)]
    forward = measure.float_ops(lambda x: tf.matmul(x, dense.kernel), spec)
    transpose = measure.float_ops(
        lambda x: tf.matmul(tf.matmul(x, dense.kernel), dense.kernel, transpose_b=True), spec)
    assert forward == 2 * 3 * 7 * 5
    assert transpose == 2 * forward


def test_interleaved_medians_runs_in_turns():
    calls = []
    medians = measure.interleaved_medians(
        {"a": lambda: calls.append("a"), "b": lambda: (calls.append("b"), time.sleep(0.01))},
        warmup=1, repeats=3)
    assert calls == ["a", "b"] + ["a", "b"] * 3
    assert medians["wall"]["b"] >= 0.01 > medians["wall"]["a"]
    assert medians["cpu"]["b"] < 0.005  # sleeping costs no CPU time


def test_step_time_ci_end_to_end(tmp_path):
    out = tmp_path / "st"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "step_time.py"), f"--out={out}", "--preset=ci"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "wrote" in proc.stdout
    results = json.loads((out / "results.json").read_text())
    assert results["command"] and "tensorflow" in results["versions"]
    res = results["results"]["racecar_mi_net"]
    assert res["num_constrained"] == 6
    assert res["flops_per_example"]["ideal_ratio"] > 1
    assert not res["errors"], res["errors"]
    for variant in ("standard", "racecar", "lambda0", "rnl", "deepest", "depth1", "standard_jit",
                    "racecar_jit"):
        assert res["step_ms"][variant] > 0 and res["step_cpu_ms"][variant] > 0, variant
    assert set(res["ratios"]["depth"]) == {"0", "1", "6"}
    memory = res["memory_mb"]
    assert set(memory) == {"standard", "racecar"}
    # The reverse pass keeps its own activations for backprop.
    assert memory["racecar"]["step_mb"] > memory["standard"]["step_mb"] > 0
    table = (out / "table.md").read_text()
    assert "`racecar_mi_net` (12, 4)" in table
    assert (out / "depth.png").read_bytes()[:8] == PNG_MAGIC
    assert not list(out.rglob(".*.tmp")), "a temporary file was left behind"


def _op_counts(model, x, y):
    graph = tf.function(model.train_step).get_concrete_function((x, y)).graph
    counts = {}
    for op in graph.get_operations():
        counts[op.type] = counts.get(op.type, 0) + 1
    return counts


@pytest.mark.parametrize("weight, convs", [(1e-5, 6), (0.0, 3)])
def test_racecar_step_graph_computes_the_forward_once(weight, convs):
    """MNIST CNN step graph: 3 forward convolutions, +3 from the reverse pass's backward.

    With the reverse pass: Conv2D = 3 forward + 3 (gradient of each transposed
    conv with respect to its input), Conv2DBackpropInput = 3 reverse + 3
    gradients of the forward convs; a recomputed forward would add Conv2D
    ops. With λ = 0 the step holds the standard step's convolutions only.
    """
    model = zoo.racecar_mnist_cnn(racecar_weight=weight)
    model.compile(keras.optimizers.SGD(0.0), CE)
    ops = _op_counts(model, tf.zeros([4, 28, 28, 1]), tf.zeros([4], tf.int32))
    assert ops["Conv2D"] == convs
    assert ops["Conv2DBackpropInput"] == convs
    assert ops["Conv2DBackpropFilter"] == convs
    assert ops["MatMul"] == 3  # the head: forward, and the gradients of kernel and input
    assert ("CheckNumerics" in ops) == bool(weight)  # the NaN check only where the input is compared


def test_fit_traces_the_step_once_per_batch_shape():
    model = zoo.racecar_mnist_cnn()
    model.compile(keras.optimizers.SGD(0.0), CE)
    traces = []
    loss_terms = model.compute_loss_terms

    def counted(*args, **kwargs):
        traces.append(1)
        return loss_terms(*args, **kwargs)

    model.compute_loss_terms = counted
    x = np.zeros((40, 28, 28, 1), np.float32)
    y = np.zeros(40, np.int32)
    model.fit(x, y, batch_size=16, epochs=3, verbose=0)  # 9 steps: batches of 16, 16, 8
    assert len(traces) <= 2  # one per batch shape at most (Keras: 1, a None batch dimension)
