"""Measuring train steps: interleaved medians, peak memory, FLOPs.

Used by the ``benchmarks/`` scripts (not part of the installed library:
a script imports it from its own folder, ``import measure``). Every speed number is a *ratio* taken
in one process on the same model, batch and data: the variants are warmed
up, then timed in turns (A B C A B C …) and each one's median is kept, so
that load from other processes on the machine hits every variant alike;
CPU time is kept beside wall time, as it barely feels that load.

Example:

```python
import time
import measure

medians = measure.interleaved_medians(
    {"short": lambda: time.sleep(0.001), "long": lambda: time.sleep(0.002)},
    warmup=1, repeats=5)
print(medians["wall"]["long"] / medians["wall"]["short"])  # about 2
```
"""

import json
import os
import statistics
import subprocess
import sys
import time

import tensorflow as tf


def interleaved_medians(fns, warmup=2, repeats=10, progress=None):
    """Median wall time and CPU time of each callable, timed in turns.

    CPU time (``time.process_time``: every thread of this process) counts
    only this process's work, so it is much steadier than wall time on a
    machine shared with other jobs; wall time is what a user waits.

    Args:
        fns: dict name -> callable with no arguments that blocks until its
            work is done.
        warmup: untimed calls of each callable first (tracing, caches).
        repeats: timed rounds; each round calls every callable once.
        progress: optional ``print``-like function, called once per round.

    Returns:
        dict: ``{"wall": {name: seconds}, "cpu": {name: seconds}}``, medians
        per call.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    wall = {name: [] for name in fns}
    cpu = {name: [] for name in fns}
    for r in range(repeats):
        for name, fn in fns.items():
            start_cpu, start = time.process_time(), time.perf_counter()
            fn()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
        if progress:
            progress(f"    round {r + 1}/{repeats}")
    return {
        "wall": {name: statistics.median(t) for name, t in wall.items()},
        "cpu": {name: statistics.median(t) for name, t in cpu.items()},
    }


def float_ops(fn, input_signature):
    """FLOPs of one call of ``fn``, counted by TensorFlow's profiler.

    The graph of ``tf.function(fn)`` is traced for ``input_signature`` and
    TensorFlow's registered op statistics are summed (``MatMul``, ``Conv2D``,
    ``Conv2DBackpropInput``, ``BiasAdd``, element-wise ops, ...; a
    multiply-add counts as 2). Ops without a registered statistic count 0.

    Args:
        fn: a function of tensors.
        input_signature: list of ``tf.TensorSpec`` with a static batch size.

    Returns:
        int: total float operations.
    """
    graph = tf.function(fn).get_concrete_function(*input_signature).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return int(tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops)


def step_memory(step, warmup=1, steps=5, device="CPU:0"):
    """Peak memory of ``step`` by TensorFlow's allocator statistics.

    After ``warmup`` calls (tracing) the step runs ``steps`` times, the
    allocator's peak reset before each; the per-step peaks vary by about
    ±10 % on CPU (intra-op threads), so the median is reported. On CPU
    TensorFlow keeps these statistics only with its BFC allocator: run this
    in a child process started with ``CHILD_ENV``
    (``TF_CPU_ALLOCATOR_USE_BFC=true``; see ``run_child``), so the process
    that times steps keeps TensorFlow's default allocator.

    Returns:
        dict: ``base_mb`` (tensors alive before stepping: weights, optimizer
        state), ``peak_mb`` (the median per-step allocator peak), ``step_mb``
        (the median of peak − tensors alive before that step: activations,
        reverse signals, gradients held at the peak) and ``step_mb_range``
        (its minimum and maximum).

    Raises:
        RuntimeError: the allocator keeps no statistics (BFC not enabled).
    """
    for _ in range(warmup):
        step()
    bases, peaks = [], []
    for _ in range(steps):
        tf.config.experimental.reset_memory_stats(device)
        bases.append(tf.config.experimental.get_memory_info(device)["current"])
        step()
        peaks.append(tf.config.experimental.get_memory_info(device)["peak"])
    if max(peaks) == 0:
        raise RuntimeError(
            f"{device} keeps no allocator statistics; start the process with "
            "TF_CPU_ALLOCATOR_USE_BFC=true (measure.CHILD_ENV)."
        )
    mb = 1024 * 1024
    added = [(p - b) / mb for p, b in zip(peaks, bases)]
    return {"base_mb": bases[0] / mb, "peak_mb": statistics.median(peaks) / mb,
            "step_mb": statistics.median(added), "step_mb_range": [min(added), max(added)]}


CHILD_ENV = {
    # TensorFlow's BFC allocator on CPU: it keeps peak-memory statistics.
    "TF_CPU_ALLOCATOR_USE_BFC": "true",
    # TensorFlow's own (Eigen) kernels: with oneDNN's the same standard step
    # of the smoke generator peaked anywhere from 64 to 105 MB from one
    # process to the next; with these, three processes agreed to 0.1 MB.
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}


def run_child(argv, marker="STEP_MEMORY_JSON ", timeout=900):
    """Runs ``python argv...`` and returns the JSON printed after ``marker``.

    Raises:
        RuntimeError: the child failed or printed no result (its output tail
            is in the message).
    """
    env = dict(os.environ, **CHILD_ENV)
    proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True,
                          env=env, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith(marker):
            return json.loads(line[len(marker):])
    raise RuntimeError(
        f"child {argv} exited {proc.returncode} without a result:\n"
        f"{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}"
    )
