r"""Step time and memory of racecar training against the standard step, per zoo model.

For every reversible zoo model at a CPU-sized input and batch, in one process
on the same weights, batch and data, this measures the median train-step time
of

* ``standard``: a plain ``keras.Model`` over the same layers (no reverse pass);
* ``racecar``: the reverse pass and the racecar loss at full depth (all
  constrained points, ``s = n``);
* ``lambda0``: full depth with ``λ = 0`` (the term is not computed);
* ``depth<s>``: depth ``s`` for a few ``s`` in ``1 … n``;
* ``rnl``: full depth plus RNL latent generation;
* ``deepest``: full depth with ``λ_m = 0`` except at ``L_n`` (the deepest
  constrained point);
* ``standard``/``racecar`` with ``jit_compile=True`` (XLA), beside the
  default (Keras turns XLA off on CPU-only machines), timed in a group of
  their own with ``standard``/``racecar`` again as their baseline;

timed in turns after a warm-up (medians), with SGD at learning rate 0 so the
weights stay the same for every variant and round. Beside each ratio it
gives the FLOP-ideal ratio racecar ÷ standard counted by TensorFlow's
profiler (``measure.float_ops``, ``benchmarks/measure.py``):
``(F_forward + F_reverse) / F_forward``, where ``F_forward`` is the model's
forward pass and ``F_reverse`` the reverse pass (the transposed layers do one
forward's worth of work per constrained layer); a backward pass costs about
twice its forward for both, so the step ratio is the forward ratio. Peak
memory is TensorFlow's own allocator peak while a variant steps, reset
between variants, measured in one child process per model that uses
TensorFlow's BFC allocator on CPU (it keeps the statistics;
``measure.step_memory``).

It writes ``results.json`` (every number, the command, the machine, library
versions), ``table.md`` (the README table) and ``depth.png`` (step time
against depth) under ``--out``.

Usage:

    python benchmarks/step_time.py --out=runs/step_time                 # CPU preset
    python benchmarks/step_time.py --models=racecar_mnist_cnn --repeats=30
    python benchmarks/step_time.py --preset=ci --out=/tmp/st           # seconds, for tests
    python benchmarks/step_time.py --table_from=runs/step_time/results.json --out=runs/step_time
"""

import json
import os
import subprocess
import sys
import time

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# results.json and the environment record come from the examples' plumbing (examples/common).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples"))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_reversible as kr  # noqa: E402
import zoo  # noqa: E402
from keras_reversible import files  # noqa: E402

import measure  # noqa: E402  (benchmarks/measure.py)
from common import experiment  # noqa: E402  (examples/common/experiment.py)

# CPU-sized inputs: the papers' CIFAR sizes; VGG-19 at 32×32 (its CIFAR layout).
# In the order measured: small to large.
INPUTS = {
    "racecar_mi_net": dict(input_shape=(12,)),
    "racecar_mnist_cnn": dict(input_shape=(28, 28, 1)),
    "smoke_generator": dict(input_shape=(16, 16, 1)),
    "rn_baseline": dict(input_shape=(32, 32, 3)),
    "reversible_cifar_resnet": dict(input_shape=(32, 32, 3)),  # depth 20, the studies' network
    "reversible_densenet40": dict(input_shape=(32, 32, 3)),
    "reversible_resnet18": dict(input_shape=(32, 32, 3)),
    "racecar_cifar_vgg": dict(input_shape=(32, 32, 3)),
    "reversible_vgg19": dict(input_shape=(32, 32, 3), num_classes=10),
}
# keras.applications families beyond the papers' layers (gates, raw ops, nested
# models, LayerScale), made reversible with make_reversible at 32×32, in the
# default preset; --models takes any keras.applications constructor (at its
# smallest input: 75×75 for the Inception families and Xception).
APPLICATIONS = ("MobileNetV3Small", "EfficientNetB0", "ConvNeXtTiny")
INPUTS.update({name: dict(input_shape=(32, 32, 3)) for name in APPLICATIONS})
ALL_APPLICATIONS = {
    name: dict(input_shape=(75, 75, 3) if name.startswith(("Inception", "Xception"))
               else (32, 32, 3))
    for name in dir(keras.applications) if name[:1].isupper()}
PRESETS = {
    # models, batch size, warm-up steps, timed rounds, depth points, memory, XLA
    "cpu": dict(models=list(INPUTS), batch_size=16, warmup=2, repeats=12, depth_points=4,
                memory=("standard", "racecar", "depth1", "lambda0", "rnl"), jit=True),
    "ci": dict(models=["racecar_mi_net"], batch_size=4, warmup=1, repeats=2, depth_points=2,
               memory=("standard", "racecar"), jit=True),
}
GOALS = {"racecar_over_ideal": 1.05, "lambda0": 1.03, "memory": 2.0}

FLAGS = flags.FLAGS
flags.DEFINE_string("out", "runs/step_time", "Output folder.")
flags.DEFINE_enum("preset", "cpu", list(PRESETS), "Models, batch and repeats preset.")
flags.DEFINE_list("models", None, "Zoo models or keras.applications families (overrides the "
                  f"preset); known: {list(INPUTS)}.")
flags.DEFINE_integer("batch_size", None, "Batch size (overrides the preset).")
flags.DEFINE_integer("repeats", None, "Timed rounds per variant (overrides the preset).")
flags.DEFINE_integer("warmup", None, "Untimed steps per variant first (overrides the preset).")
flags.DEFINE_list("memory", None, "Variants whose peak memory is measured, in a child process "
                  "per model (overrides the preset; --memory= measures none).")
flags.DEFINE_bool("jit", None, "Also time jit_compile=True (overrides the preset).")
flags.DEFINE_list("variants", None, "Only these variants (standard, racecar, lambda0, depth, rnl, "
                  "deepest; default all).")
flags.DEFINE_integer("depth_points", None, "Depths timed in 1 … n (overrides the preset).")
flags.DEFINE_string("table_from", None, "Only write table.md and depth.png under --out from "
                    "this results.json (e.g. of a run stopped early).")
flags.DEFINE_string("child", None, "Internal: measure the memory of this model in this process.")


def build_base(name):
    """The reversible model ``name``: a zoo entry, or a keras.applications family."""
    if name in ALL_APPLICATIONS:
        network = getattr(keras.applications, name)(weights=None, classes=10,
                                                     **ALL_APPLICATIONS[name])
        return kr.make_reversible(network, input_range="relu")
    return zoo.get(name, **INPUTS[name])


def depths_for(n, points):
    """About ``points`` depths spread over 1 … n, always with 1 and n."""
    return sorted({int(round(d)) for d in np.linspace(1, n, min(n, max(points, 2)))})


def batch_for(model, batch_size, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((batch_size, *model.input_shape[1:]), dtype=np.float32)
    out_shape = model.output_shape[1:]
    if len(out_shape) == 1 and out_shape[0] > 1:  # a classifier
        y = rng.integers(0, out_shape[0], batch_size).astype(np.int32)
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    else:  # the smoke generator: an image-to-image L2 task
        y = rng.random((batch_size, *out_shape), dtype=np.float32)
        loss = "mse"
    return tf.constant(x), tf.constant(y), loss


def build_variants(name, batch_size, depths, jit, variants=None):
    """The variants of ``name`` (default all) over one set of layers (shared weights)."""
    keras.utils.set_random_seed(0)
    base = build_base(name)
    n = base.num_constrained
    settings = base.reversal_settings
    weight = settings["racecar_weight"]
    settings["racecar_weight"] = weight[0] if isinstance(weight, list) else weight
    settings["racecar_weight"] = settings["racecar_weight"] or 1.0

    def reversible(**overrides):
        return kr.make_reversible(base, **{**settings, **overrides})

    builders = {
        "standard": lambda: keras.Model(base.inputs, base.outputs, name=f"{name}_standard"),
        "racecar": lambda: reversible(depth=n),
        "lambda0": lambda: reversible(depth=n, racecar_weight=0.0),
        **{f"depth{s}": (lambda s=s: reversible(depth=s)) for s in depths if s != n},
        "rnl": lambda: reversible(depth=n, latent_generation=True),
        # λ_m = 0 for m < n: TensorFlow prunes the reverse program below L_n.
        "deepest": lambda: reversible(depth=n, racecar_weight=[0.0] * (n - 1) + [1.0]),
    }
    if variants is not None:
        builders = {k: b for k, b in builders.items()
                    if k in variants or (k.startswith("depth") and "depth" in variants)}
    x, y, loss = batch_for(base, batch_size)
    compiled, errors = {}, {}
    jit_flags = {"": False, **({"_jit": True} if jit else {})}
    for variant, build in builders.items():
        for suffix, jit_compile in jit_flags.items():
            if suffix and variant not in ("standard", "racecar"):
                continue
            key = variant + suffix
            try:
                model = build()
                model.compile(keras.optimizers.SGD(0.0), loss, jit_compile=jit_compile)
                compiled[key] = model
            except Exception as err:  # noqa: BLE001 - recorded in the JSON
                errors[key] = f"{type(err).__name__}: {err}"
    return base, compiled, errors, (x, y)


def stepper(model, data):
    """A no-argument callable running one train step and waiting for it."""
    iterator = iter(tf.data.Dataset.from_tensors(data).repeat())
    model.make_train_function()
    fn = model.train_function

    def step():
        float(fn(iterator)["loss"])

    return step


def flop_counts(base):
    """Forward and reverse-pass FLOPs of one example, by TF's profiler."""
    spec = [tf.TensorSpec((1, *base.input_shape[1:]), tf.float32)]

    def forward(x):
        return base(x, training=False)

    def forward_and_reverse(x):
        _, taps = base.reverse_program.forward(x, False)
        return base.reverse_program.reverse(taps, False)

    f_forward = measure.float_ops(forward, spec)
    f_reverse = measure.float_ops(forward_and_reverse, spec) - f_forward
    return {"forward": f_forward, "reverse": f_reverse,
            "ideal_ratio": (f_forward + f_reverse) / f_forward}


def child_main(name, cfg):
    """Peak memory of every memory variant of ``name``, in this (child) process.

    The variants step one after the other, ``standard`` first; the allocator
    peak is reset before each, and each one's ``step_mb`` is what it adds on
    top of the tensors already alive.
    """
    # One inter-op thread: ops run one at a time in a fixed order (with
    # parallel scheduling the peak varied by up to ±20 % between runs).
    tf.config.threading.set_inter_op_parallelism_threads(1)
    depths = [int(v[len("depth"):]) for v in cfg["memory"] if v.startswith("depth")]
    _, compiled, errors, data = build_variants(name, cfg["batch_size"], depths, False, cfg["memory"])
    result = {}
    for variant in cfg["memory"]:
        if variant not in compiled:  # failed, or depth1 of a one-point model
            result[variant] = {"error": errors.get(variant, "no such variant of this model")}
        else:
            result[variant] = measure.step_memory(stepper(compiled[variant], data))
    print("STEP_MEMORY_JSON " + json.dumps(result), flush=True)


def measure_memory(name, cfg):
    argv = [os.path.abspath(__file__), f"--child={name}", f"--batch_size={cfg['batch_size']}",
            f"--memory={','.join(cfg['memory'])}"]
    try:
        out = measure.run_child(argv)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as err:
        out = {v: {"error": str(err)[-500:]} for v in cfg["memory"]}
    for variant, mem in out.items():
        print(f"    memory {variant}: {mem}", flush=True)
    return out


def ratio(a, b):
    return None if a is None or b is None else a / b


def timing_ratios(ms, n, depths, ideal):
    """The ratios of the table, from one clock's medians ``ms``."""
    std = ms.get("standard")
    by_depth = {0: ms.get("lambda0")}
    for s in depths:
        by_depth[s] = ms.get("racecar" if s == n else f"depth{s}")
    racecar_ratio = ratio(ms.get("racecar"), std)
    return {
        "racecar": racecar_ratio,
        "racecar_over_ideal": ratio(racecar_ratio, ideal),
        "lambda0": ratio(ms.get("lambda0"), std),
        "rnl": ratio(ms.get("rnl"), std),
        "deepest_only": ratio(ms.get("deepest"), std),
        "depth": {str(s): ratio(t, std) for s, t in by_depth.items()},
        "jit_standard": ratio(ms.get("standard_jit"), ms.get("standard_xla_group")),
        "jit_racecar": ratio(ms.get("racecar_jit"), ms.get("racecar_xla_group")),
        "racecar_jit_over_standard_jit": ratio(ms.get("racecar_jit"), ms.get("standard_jit")),
    }


def measure_model(name, cfg):
    start = time.time()
    print(f"{name}: building variants", flush=True)
    probe = build_base(name)
    depths = depths_for(probe.num_constrained, cfg["depth_points"])
    del probe
    base, compiled, errors, data = build_variants(
        name, cfg["batch_size"], depths, cfg["jit"], cfg.get("variants"))
    flops = flop_counts(base)
    steps = {}
    for key, model in compiled.items():
        try:
            steps[key] = stepper(model, data)
            steps[key]()  # trace (and for XLA compile) now, so errors surface here
        except Exception as err:  # noqa: BLE001 - e.g. XLA cannot compile an op
            errors[key] = f"{type(err).__name__}: {str(err)[:300]}"
            steps.pop(key, None)
    print(f"{name}: timing {list(steps)}", flush=True)
    # XLA variants in a group of their own, with their own standard/racecar
    # baseline: timed among the others they slowed down whatever ran next
    # (MNIST CNN, 150 rounds: λ=0 ÷ std read 1.11 in CPU time, 1.00 without them).
    plain = {k: f for k, f in steps.items() if not k.endswith("_jit")}
    xla = {k: f for k, f in steps.items() if k.split("_jit")[0] in ("standard", "racecar")}
    ms, cpu_ms = {}, {}
    has_xla = any(k.endswith("_jit") for k in steps)
    for group, suffix in ((plain, ""), (xla if has_xla else {}, "_xla_group")):
        if not group:
            continue
        medians = measure.interleaved_medians(
            group, warmup=cfg["warmup"], repeats=cfg["repeats"],
            progress=lambda line: print(f"  {name}{suffix}{line}", flush=True),
        )
        for k, v in medians["wall"].items():
            ms[k if k.endswith("_jit") or not suffix else k + suffix] = v * 1000
        for k, v in medians["cpu"].items():
            cpu_ms[k if k.endswith("_jit") or not suffix else k + suffix] = v * 1000
    n = base.num_constrained
    result = {
        "input_shape": list(base.input_shape[1:]),
        "batch_size": cfg["batch_size"],
        "num_constrained": n,
        "flops_per_example": flops,
        "step_ms": ms,
        "step_cpu_ms": cpu_ms,
        "errors": errors,
        "ratios": timing_ratios(ms, n, depths, flops["ideal_ratio"]),
        "ratios_cpu": timing_ratios(cpu_ms, n, depths, flops["ideal_ratio"]),
    }
    if cfg["memory"]:
        del compiled, steps
        mem = measure_memory(name, cfg)
        result["memory_mb"] = mem

        def step_mb(v):
            return mem.get(v, {}).get("step_mb")

        # Peak = tensors alive before the step (weights; the standard variant's,
        # measured first, so no other variant's state is in it) + the step's own.
        base = mem.get("standard", {}).get("base_mb")
        result["ratios"]["memory_step"] = ratio(step_mb("racecar"), step_mb("standard"))
        # The loss at L'_1 alone needs the whole reverse pass (and keeps it for
        # backprop) but has one loss gradient instead of one per point.
        result["ratios"]["memory_step_depth1"] = ratio(step_mb("depth1"), step_mb("standard"))
        if base is not None and step_mb("racecar") is not None:
            result["ratios"]["memory_peak"] = (base + step_mb("racecar")) / (base + step_mb("standard"))
    result["seconds"] = time.time() - start
    r = result["ratios"]
    c = result["ratios_cpu"]
    print(f"{name}: racecar/std {fmt(r['racecar'])} wall, {fmt(c['racecar'])} CPU (ideal "
          f"{flops['ideal_ratio']:.2f}), λ=0/std {fmt(r['lambda0'])} wall, {fmt(c['lambda0'])} "
          f"CPU, {time.time() - start:.0f}s", flush=True)
    return result


def fmt(value, digits=2):
    return "—" if value is None else f"{value:.{digits}f}"


def markdown_table(results):
    """The README table: one row per model; "CPU-time ratio (wall-time ratio)"."""
    rows = [
        "| model (input, batch) | std step ms, CPU (wall) | racecar ÷ std | FLOP-ideal "
        "| measured ÷ ideal | λ=0 ÷ std | RNL ÷ std | λ at L_n only ÷ std "
        "| depth s: step ÷ std | XLA ÷ no XLA: std, racecar "
        "| peak memory racecar ÷ std (step only; s = 1) |",
        "|---|---|---|---:|---|---|---|---|---|---|---|",
    ]
    for name, res in results.items():
        wall = res["ratios"]
        cpu = res.get("ratios_cpu", {})

        def both(key, digits=2):
            if not cpu:
                return fmt(wall.get(key), digits)
            return f"{fmt(cpu.get(key), digits)} ({fmt(wall.get(key), digits)})"

        shape = "×".join(str(d) for d in res["input_shape"])
        depth = ", ".join(
            f"{s}: {fmt(cpu['depth'][s]) if cpu else fmt(v)}" for s, v in wall["depth"].items())
        jit = (f"{fmt(cpu.get('jit_standard'))}, {fmt(cpu.get('jit_racecar'))}" if cpu
               else f"{fmt(wall['jit_standard'])}, {fmt(wall['jit_racecar'])}")
        jit_errors = [k for k in res["errors"] if k.endswith("_jit")]
        if jit_errors:
            jit += f" ({', '.join(jit_errors)} failed: see errors in the JSON)"
        std_ms = fmt(res["step_ms"].get("standard"), 1)
        if "step_cpu_ms" in res:
            std_ms = f"{fmt(res['step_cpu_ms'].get('standard'), 1)} ({std_ms})"
        rows.append(
            f"| `{name}` ({shape}, {res['batch_size']}) | {std_ms} | {both('racecar')} "
            f"| {fmt(res['flops_per_example']['ideal_ratio'])} | {both('racecar_over_ideal')} "
            f"| {both('lambda0')} | {both('rnl')} | {both('deepest_only')} | {depth} | {jit} "
            f"| {fmt(wall.get('memory_peak'))} ({fmt(wall.get('memory_step'))}; "
            f"{fmt(wall.get('memory_step_depth1'))}) |"
        )
    return "\n".join(rows)


def plot_depth(path, results):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, res in results.items():
        n = res["num_constrained"]
        ratios = res.get("ratios_cpu", res["ratios"])
        points = [(int(s), v) for s, v in ratios["depth"].items() if v is not None]
        if not points:
            continue
        s, v = zip(*sorted(points))
        line, = ax.plot(np.array(s) / n, v, marker="o", label=f"{name} (n={n})")
        ax.plot([1.0], [res["flops_per_example"]["ideal_ratio"]], marker="x", ms=9,
                color=line.get_color())
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("depth s / n  (s = 0: λ = 0, no reverse pass)")
    clock = "CPU" if all("ratios_cpu" in r for r in results.values()) else "wall"
    ax.set_ylabel(f"train step {clock} time ÷ standard step")
    ax.set_title("Racecar step time against depth s (median of interleaved steps; "
                 "×: FLOP-ideal at s = n)", fontsize=10)
    ax.legend(fontsize=7)
    with files.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png", bbox_inches="tight")
    plt.close(fig)


def main(argv):
    del argv
    cfg = dict(PRESETS[FLAGS.preset])
    for key in ("models", "batch_size", "repeats", "warmup", "memory", "jit", "variants",
                "depth_points"):
        if getattr(FLAGS, key) is not None:
            cfg[key] = getattr(FLAGS, key)
    if FLAGS.child:
        child_main(FLAGS.child, cfg)
        return
    unknown = set(cfg["models"]) - set(INPUTS) - set(ALL_APPLICATIONS)
    if unknown:
        raise app.UsageError(f"--models: unknown {sorted(unknown)}; known: {list(INPUTS)} and "
                             "the keras.applications constructors.")
    if FLAGS.table_from:
        results = experiment.read_json(FLAGS.table_from)["results"]
    else:
        results = {}
        for name in cfg["models"]:
            results[name] = measure_model(name, cfg)
            write_results(cfg, results, complete=name == cfg["models"][-1])
    table = markdown_table(results)
    print(table)
    with files.atomic_path(os.path.join(FLAGS.out, "table.md")) as tmp:
        with open(tmp, "w") as f:
            f.write(table + "\n")
    plot_depth(os.path.join(FLAGS.out, "depth.png"), results)
    written = "table.md, depth.png" if FLAGS.table_from else "results.json, table.md, depth.png"
    print(f"wrote {FLAGS.out}/{written}", flush=True)


def write_results(cfg, results, complete):
    """results.json so far (after each model: a long run killed keeps its models)."""
    summary = {
        **experiment.environment(),
        "preset": FLAGS.preset,
        "settings": cfg,
        "goals": GOALS,
        "method": (
            "one process; per model every variant shares the layers (weights) and one "
            "random batch; SGD with learning rate 0 keeps the weights fixed; after "
            "`warmup` untimed steps each, the variants are timed in turns for `repeats` "
            "rounds and the medians of wall time and of process CPU time (all threads) kept; "
            "CPU time barely feels other processes' load; memory: TensorFlow's allocator peak while stepping "
            "(BFC allocator, in one child process per model with one inter-op thread and "
            "TensorFlow's Eigen kernels instead of oneDNN's, whose peaks vary between "
            "processes; "
            "step_mb = the median over 5 steps of the per-step peak − tensors alive "
            "before the step). "
            "The machine is shared with other jobs: absolute times are inflated, ratios "
            "are what to read."
        ),
        "load_average": os.getloadavg(),
        "complete": complete,
        "results": results,
    }
    experiment.write_json(os.path.join(FLAGS.out, "results.json"), summary)


if __name__ == "__main__":
    sys.exit(app.run(main))
