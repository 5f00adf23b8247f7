r"""Racecar §5.2 at CPU scale: transfer from CIFAR-10 classes 0–4 to 5–9.

Racecar table 5's models, on ``zoo.reversible_cifar_resnet(depth=20)`` (He
et al. 2016, option A; the default) or, with ``--network=vgg``, on the
paper's own network, ``zoo.racecar_cifar_vgg`` (table 11) at ``--width``
(0.25: 2.5 M parameters):

* ``Std_A``: the task loss only, on task A (classes 0–4: airplane … deer);
* ``RR20_A`` (``RR13_A`` for the VGG): plus the racecar loss on every
  constrained point (the ResNet's 19 convolution inputs and its classifier's
  input; the VGG's 13 convolution inputs, reverse pass from block 13),
  ``reduction="mean"``, weight ``--racecar_weight`` (λ = 0.1: at
  initialisation the racecar loss is ≈ 0.9× the task loss on the ResNet).
  λ = 1, the paper's VGG ratio of ≈ 5–9×, collapsed RR20_A: within three
  epochs every layer's output went to 0, the racecar loss's trivial minimum
  (only the input term is left), and it stayed at chance for 30 epochs;
  λ = 0.01 leaves the racecar loss ≈ 30× that minimum, barely constrained
  (see ``docs/results/racecar_cifar_resnet.md``);
* phase II (racecar §3: "only trained with the forward structure and
  original loss"): ``Std_AA``, ``RR20_AA`` (the phase-I networks trained
  further on A) and ``Std_AB``, ``RR20_AB`` (trained on task B, classes
  5–9: dog … truck). Every layer is reused except the classifier, which is
  re-initialised (appendix A.3);
* ``Std_B``: the same network trained on B from scratch.

The question it answers: do features learned with the racecar loss transfer
better (RR20_AB > Std_AB), and does either beat training on B from scratch?

Protocol (every run): C10+ augmentation (pad 4, random crop, flip), images
divided by the channel means (RN §3.1); SGD with momentum 0.9, decoupled
weight decay 1e-3, batch 128, learning rate 0.1 with a one-epoch warm-up and
a cosine decay to 0 over the run (the protocol of
``examples/rn_cifar_resnet.py``), the global gradient norm clipped at 2
(``--clipnorm``: without it RR20_A at λ = 1 went to NaN in epoch 9). A run
whose loss diverges (NaN) or that collapses (training accuracy at chance for
five epochs) stops the study with a message; its rerun starts afresh.

Presets (flags override them):

* ``cpu``: all 25,000 training and 5,000 test images of each task; epochs
  A 30, AA 15, AB 15, B 15; seeds 0, 1, 2. Measured on 2 CPU cores: 2.8 h
  of training per seed (seeds 0 and 1; Std_A 30 min, RR20_A about 1 h, each
  15-epoch phase-II run and Std_B 13-17 min), so the study spans sessions:
  rerun the command to continue.
* ``tiny``: 128 / 100 images, 1 epoch each, batch 64: seconds, for tests.

Resuming: every run (phase I, phase II and Std_B alike) keeps a per-epoch
backup (``common.resumable``): a killed study continues after the last
finished epoch of the run it was in; finished runs are cached under
``<out>/runs/`` (the phase-I weights too) and not retrained. ``--report_only``
writes ``results.json`` and the figures from the seeds finished so far
(``complete: false``, ``missing_runs``).

It writes, under ``--out``:

* ``results.json``: test accuracy per model and seed, mean ± sample std,
  RR − Std for each task and whether it exceeds the seed-to-seed spread,
  racecar table 5 beside it, the phase-I per-layer reconstruction errors
  ``‖L'_m − L_m‖/‖L_m‖``, wall time per run, the command and versions;
* ``accuracy.png``: the seven models' accuracies, every seed, and RR − Std
  per phase and seed;
* ``reconstructions.png``: task-A test images, Std_A's and the racecar
  model's regenerated inputs ``I'`` and the per-layer errors.

Usage (``KERAS_REVERSIBLE_DATA`` names the folder holding ``cifar10/``):

    python examples/racecar_cifar_resnet.py --out=runs/racecar_cifar_resnet
    python examples/racecar_cifar_resnet.py --network=vgg --out=runs/racecar_cifar_vgg
    python examples/racecar_cifar_resnet.py --preset=tiny --out=/tmp/rcr   # seconds
"""

import dataclasses
import os

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import zoo  # noqa: E402
from keras_reversible import data  # noqa: E402
from common import experiment, resumable  # noqa: E402

# Racecar table 5 (CIFAR VGG, CIFAR-10 → CIFAR-100, 5 runs): mean, std of the test accuracy;
# "RR" stands for the network's racecar model (RR20 or RR13).
PAPER_TABLE5 = {
    "Std_A": (0.806, 0.0387), "RR_A": (0.664, 0.0945), "Std_AA": (0.805, 0.0340),
    "RR_AA": (0.856, 0.0130), "Std_AB": (0.183, 0.0141), "RR_AB": (0.276, 0.0138),
    "Std_B": (0.253, 0.0123),
}
TASKS = {"A": list(range(5)), "B": list(range(5, 10))}
COMPARED = ("A", "AA", "AB")  # the phases where RR and Std are compared


@dataclasses.dataclass(frozen=True)
class Network:
    """A network of the study: how to build it and where phase II cuts its classifier off."""

    title: str
    racecar: str  # the racecar model's name: RR + the constrained points
    features: str  # phase II keeps the layers up to this one and adds a fresh classifier
    logits: bool  # the classifier's output: logits or probabilities


NETWORKS = {
    "resnet20": Network("CIFAR ResNet-20 (option A)", "RR20", "avg_pool", logits=False),
    "vgg": Network("racecar CIFAR VGG (table 11)", "RR13", "relu15", logits=True),
}


def network():
    return NETWORKS[FLAGS.network]


def model_names():
    """The seven table-5 models, RR named after the network (RR20_A, ... or RR13_A, ...)."""
    rr = network().racecar
    return ("Std_A", f"{rr}_A", "Std_AA", f"{rr}_AA", "Std_AB", f"{rr}_AB", "Std_B")
PRESETS = {
    "cpu": dict(train_images=0, test_images=0, batch_size=128, epochs=[30, 15, 15, 15],
                seeds=[0, 1, 2], eval_every=5),
    "tiny": dict(train_images=128, test_images=100, batch_size=64, epochs=[1, 1, 1, 1],
                 seeds=[0], eval_every=1),
}

FLAGS = flags.FLAGS
flags.DEFINE_string("out", "runs/racecar_cifar_resnet", "Output folder (results, figures, runs).")
flags.DEFINE_enum("network", "resnet20", list(NETWORKS),
                  "resnet20: zoo.reversible_cifar_resnet(depth=20), RR20; vgg: "
                  "zoo.racecar_cifar_vgg(width=--width), the paper's network, RR13.")
flags.DEFINE_float("width", 0.25, "--network=vgg: the VGG's width (1.0: the paper's 40 M "
                   "parameters; 0.25: 2.5 M, trains on 2 CPU cores).")
flags.DEFINE_enum("preset", "cpu", list(PRESETS), "Scale preset (cpu: all images of both tasks).")
flags.DEFINE_integer("train_images", None, "Training images per task (overrides; all: 0).")
flags.DEFINE_integer("test_images", None, "Test images per task (overrides; all: 0).")
flags.DEFINE_integer("batch_size", None, "Training batch size (overrides; cpu: 128).")
flags.DEFINE_list("epochs", None, "Epochs A,AA,AB,B (overrides; cpu: 30,15,15,15).")
flags.DEFINE_list("seeds", None, "Seeds (overrides; cpu: 0,1,2).")
flags.DEFINE_integer("eval_every", None, "Test accuracy every N epochs (the last always).")
flags.DEFINE_float("learning_rate", 0.1, "Peak SGD learning rate.")
flags.DEFINE_float("warmup_epochs", 1.0, "Linear warm-up, in epochs.")
flags.DEFINE_float("momentum", 0.9, "SGD momentum.")
flags.DEFINE_float("weight_decay", 1e-3, "Keras' decoupled SGD weight decay.")
flags.DEFINE_float("racecar_weight", 0.1, "λ of the racecar model's loss (mean reduction).")
flags.DEFINE_float("clipnorm", 2.0, "Every run clips its global gradient norm at this value "
                   "(Keras' global_clipnorm; 0: no clipping). Unclipped, RR20_A diverged to NaN "
                   "in epoch 9 of 30 at lr 0.1.", lower_bound=0.0)
flags.DEFINE_enum("source", "local", ["auto", "local", "tfds"], "Where the images come from.")
resumable.define_flags("the seeds whose seven runs have finished")


def scale():
    """The preset with the flags' overrides."""
    sc = experiment.resolve_preset(PRESETS[FLAGS.preset], FLAGS)
    epochs = [int(e) for e in sc["epochs"]]
    if len(epochs) != 4 or min(epochs) < 1:
        raise app.UsageError(f"--epochs needs 4 values >= 1 (A, AA, AB, B), got {sc['epochs']}")
    sc["epochs"] = dict(zip(("A", "AA", "AB", "B"), epochs))
    for key in ("batch_size", "eval_every"):
        if sc[key] < 1:
            raise app.UsageError(f"--{key} must be >= 1, got {sc[key]}")
    sc["train_images"] = sc["train_images"] or None
    sc["test_images"] = sc["test_images"] or None
    return sc


def task_data(sc, task, seed):
    """(train, test) of task ``"A"`` or ``"B"``; ``seed`` draws the crops and the order."""
    common = dict(name="cifar10", classes=TASKS[task], source=FLAGS.source)
    train = data.cifar_dataset(split="train", batch_size=sc["batch_size"],
                               limit=sc["train_images"], augment=True, seed=seed, **common)
    test = data.cifar_dataset(split="test", batch_size=100, limit=sc["test_images"], **common)
    return train, test


def build(racecar, seed):
    """The network for a 5-class task: every point constrained (racecar) or none (Std)."""
    keras.utils.set_random_seed(seed)
    common = dict(num_classes=len(TASKS["A"]), racecar_weight=FLAGS.racecar_weight,
                  reduction="mean")
    if FLAGS.network == "vgg":
        return zoo.racecar_cifar_vgg(width=FLAGS.width, depth=None if racecar else 0, **common)
    return zoo.reversible_cifar_resnet(depth=20, reverse_depth=None if racecar else 0,
                                       input_range=None, **common)


def phase_two(phase_one, seed):
    """The phase-I network without its reverse pass, the classifier re-initialised."""
    plain = phase_one.to_standard()
    init = keras.initializers.GlorotUniform(seed=seed)  # the same head, fresh or resumed
    outputs = keras.layers.Dense(
        len(TASKS["B"]), activation=None if network().logits else "softmax",
        kernel_initializer=init, name="predictions")(plain.get_layer(network().features).output)
    return keras.Model(plain.inputs, outputs, name=f"{plain.name}_phase2")


def _compile(model, steps_per_epoch, epochs):
    model.compile(
        keras.optimizers.SGD(
            resumable.warmup_schedule(FLAGS.learning_rate, steps_per_epoch, epochs,
                                      FLAGS.warmup_epochs),
            momentum=FLAGS.momentum, weight_decay=FLAGS.weight_decay,
            global_clipnorm=FLAGS.clipnorm or None),
        keras.losses.SparseCategoricalCrossentropy(from_logits=network().logits),
        metrics=["accuracy"])


def _eval_epochs(epochs, every):
    return sorted(set(range(every, epochs + 1, every)) | {epochs})


def train(name, seed, task, epochs, make_model, sc, cache):
    """Trains (or resumes) run ``name``; returns (its result, the trained model)."""
    key = f"{name}-seed{seed}"
    settings = cache.settings
    start = resumable.start_epoch(cache, key, settings)
    train_ds, test_ds = task_data(sc, task, seed * 100_003 + start)
    model = make_model()
    _compile(model, int(train_ds.cardinality()), epochs)
    trained = resumable.fit(model, train_ds, test_ds, epochs, cache, key, settings,
                            label=f"{name} seed {seed}", start=start,
                            validation_freq=_eval_epochs(epochs, sc["eval_every"]),
                            stop_after=FLAGS.stop_after_epochs)
    log = trained["epochs"]
    resumable.stop_if_failed(
        model, log, cache, key, f"{name} seed {seed}",
        f"Rerun with a smaller --clipnorm (now {FLAGS.clipnorm or 'none'}), --learning_rate "
        f"(now {FLAGS.learning_rate}) or --racecar_weight (now {FLAGS.racecar_weight}).",
        chance=1 / len(TASKS[task]))
    ev = model.evaluate(test_ds, verbose=0, return_dict=True)
    seconds = float(sum(e["seconds"] for e in log.values()))
    return {"test_accuracy": float(ev["accuracy"]), "seconds": seconds,
            "seconds_per_epoch": seconds / len(log), "epochs_trained": len(log),
            "sessions": trained["sessions"],
            "history": {str(k): log[k] for k in sorted(log)}}, model


def measure_reverse(model, sc, seed):
    """Per-layer ‖L'_m − L_m‖/‖L_m‖ and I' on 64 task-A test images (reverse BN calibrated)."""
    train_ds, test_ds = task_data(sc, "A", seed)
    model.calibrate_reverse_statistics(train_ds.take(8))
    x = np.concatenate([x for x, _ in test_ds.take(1)])[:64]
    pairs = model.reverse_activations(x, depth=model.num_constrained)
    return {"layer_relative_error": [float(np.linalg.norm(r - f) / np.linalg.norm(f))
                                     for f, r in pairs],
            "reconstruction_mse": float(np.mean((pairs[0][1] - x) ** 2)),
            "reconstruction_examples": np.round(pairs[0][1][:6], 3)}


def run_phase_one(prefix, seed, sc, cache):
    """Std_A or the racecar model's phase I: (its result, a function returning the model)."""
    key = f"{prefix}_A-seed{seed}"
    weights = os.path.join(cache.dir, f"{key}.weights.h5")
    make = lambda: build(prefix != "Std", seed)  # noqa: E731

    def load():
        model = make()
        model.load_weights(weights)
        return model

    run = cache.get(key)
    if run is not None and os.path.exists(weights):
        print(f"  {key}: cached", flush=True)
        return run, load
    run, model = train(f"{prefix}_A", seed, "A", sc["epochs"]["A"], make, sc, cache)
    experiment.save_model(model, weights, weights_only=True)
    run.update(measure_reverse(model, sc, seed))
    resumable.finish(cache, key, run)
    return run, load


def run_study(sc, caches):
    """Every model and seed; ``caches``: model-name prefix (``"Std"``, ``"RR20"``) → its ``RunCache``."""
    results = {name: [] for name in model_names()}
    for seed in sc["seeds"]:
        for prefix in ("Std", network().racecar):
            cache = caches[prefix]
            run, phase_one = run_phase_one(prefix, seed, sc, cache)
            results[f"{prefix}_A"].append(run)
            for task in ("A", "B"):
                name = f"{prefix}_A{task}"
                run = cache.get(f"{name}-seed{seed}")
                if run is None:
                    run, _ = train(name, seed, task, sc["epochs"][f"A{task}"],
                                   lambda: phase_two(phase_one(), seed), sc, cache)
                    resumable.finish(cache, f"{name}-seed{seed}", run)
                else:
                    print(f"  {name}-seed{seed}: cached", flush=True)
                results[name].append(run)
        cache = caches["Std"]
        run = cache.get(f"Std_B-seed{seed}")
        if run is None:
            run, _ = train("Std_B", seed, "B", sc["epochs"]["B"], lambda: build(False, seed),
                           sc, cache)
            resumable.finish(cache, f"Std_B-seed{seed}", run)
        else:
            print(f"  Std_B-seed{seed}: cached", flush=True)
        results["Std_B"].append(run)
        print("  seed {}: ".format(seed) + ", ".join(
            f"{n} {results[n][-1]['test_accuracy']:.3f}" for n in model_names()), flush=True)
    return results


def summarize(results):
    """Mean ± sample std per model, and RR − Std per task against the seed spread."""
    summary = {}
    for name, runs in results.items():
        acc = np.array([r["test_accuracy"] for r in runs])
        summary[name] = {
            "test_accuracy": acc.tolist(), "test_accuracy_mean": float(acc.mean()),
            "test_accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 else None,
            "paper_table5_mean_std": PAPER_TABLE5[name.replace(network().racecar, "RR")],
            "seconds_per_run": [r["seconds"] for r in runs],
            "sessions": [r["sessions"] for r in runs],
        }
        if "layer_relative_error" in runs[0]:
            summary[name]["layer_relative_error_mean"] = np.mean(
                [r["layer_relative_error"] for r in runs], axis=0).tolist()
            summary[name]["reconstruction_mse"] = [r["reconstruction_mse"] for r in runs]
    comparisons = {}
    for task in COMPARED:
        rr_name = f"{network().racecar}_{task}"
        std, rr = summary[f"Std_{task}"], summary[rr_name]
        spreads = [s for s in (std["test_accuracy_std"], rr["test_accuracy_std"]) if s is not None]
        spread = max(spreads) if len(spreads) == 2 else None
        diff = rr["test_accuracy_mean"] - std["test_accuracy_mean"]
        comparisons[f"{rr_name} - Std_{task}"] = {
            "difference": diff, "seed_spread": spread,
            "difference_exceeds_seed_spread": None if spread is None else bool(abs(diff) > spread)}
    return summary, comparisons



def plot_accuracy(path, summary):
    """Left: test accuracy of every model; right: RR − Std per phase, seed by seed."""
    plt = experiment.pyplot()
    fig, (ax, diff_ax) = plt.subplots(1, 2, figsize=(11, 3.8), width_ratios=(2.2, 1))
    for i, name in enumerate(model_names()):
        s = summary[name]
        color = "tab:green" if name.startswith("RR") else "tab:gray"
        ax.bar(i, s["test_accuracy_mean"], 0.6, color=color, alpha=0.7)
        ax.plot([i] * len(s["test_accuracy"]), s["test_accuracy"], "k.", ms=6)
    ax.axhline(1 / len(TASKS["A"]), color="k", ls=":", lw=1, label="chance (5 classes)")
    ax.set_xticks(range(len(model_names())), model_names())
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{network().title}, task A = CIFAR-10 classes 0–4, task B = classes 5–9\n"
                 "(bars: mean, dots: seeds)", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    # The differences are a few points: on the 0-1 axis they would not show.
    for i, task in enumerate(COMPARED):
        rr = np.array(summary[f"{network().racecar}_{task}"]["test_accuracy"])
        std = np.array(summary[f"Std_{task}"]["test_accuracy"])
        points = 100 * (rr - std)
        diff_ax.bar(i, points.mean(), 0.6, color="tab:green", alpha=0.7)
        diff_ax.plot([i] * len(points), points, "k.", ms=6)
    diff_ax.axhline(0, color="k", lw=1)
    diff_ax.set_xticks(range(len(COMPARED)), COMPARED)
    diff_ax.set_xlabel(f"model (difference {network().racecar}_x − Std_x)")
    diff_ax.set_ylabel("test accuracy difference (points)")
    diff_ax.set_title("racecar − standard\n(bars: mean, dots: seeds)", fontsize=9)
    diff_ax.grid(axis="y", alpha=0.3)
    experiment.save_figure(fig, path, dpi=100, bbox_inches="tight")


def plot_reconstructions(path, x, runs):
    plt = experiment.pyplot()
    means = np.array(data.CHANNEL_MEANS["cifar10"])
    rows = [("input I", x[:6])] + [
        (f"{name}: I' (MSE {runs[name]['reconstruction_mse']:.3g})",
         np.asarray(runs[name]["reconstruction_examples"])) for name in list(runs)]
    fig = plt.figure(figsize=(11, 3.6))
    grid = fig.add_gridspec(3, 10)
    for r, (label, images) in enumerate(rows):
        for c in range(6):
            ax = fig.add_subplot(grid[r, c])
            ax.imshow(np.clip(images[c] * means, 0, 1), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    ax = fig.add_subplot(grid[:, 7:])
    for name, color in zip(runs, ("tab:gray", "tab:green")):
        err = runs[name]["layer_relative_error"]
        ax.plot(np.arange(1, len(err) + 1), err, "o-", color=color, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("constrained point m (L_1 = input)")
    ax.set_title("||L'_m - L_m|| / ||L_m||, 64 task-A test images", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.suptitle(f"{network().title}, phase I: how close each model's reverse pass comes to "
                 "the input and every constrained point (reverse BN calibrated)", fontsize=9)
    experiment.save_figure(fig, path, dpi=90, bbox_inches="tight")


def main(argv):
    del argv
    sc = scale()
    settings = {k: v for k, v in sc.items() if k != "seeds"}
    settings.update(learning_rate=FLAGS.learning_rate, warmup_epochs=FLAGS.warmup_epochs,
                    momentum=FLAGS.momentum, weight_decay=FLAGS.weight_decay,
                    racecar_weight=FLAGS.racecar_weight, clipnorm=FLAGS.clipnorm,
                    source=FLAGS.source,
                    network=FLAGS.network, result_format=1)
    if FLAGS.network == "vgg":
        settings["width"] = FLAGS.width
    # A Std run does not depend on λ: a study rerun with another --racecar_weight keeps it.
    caches = {"Std": experiment.RunCache(
                  FLAGS.out, {k: v for k, v in settings.items() if k != "racecar_weight"}),
              network().racecar: experiment.RunCache(FLAGS.out, settings)}
    print(f"racecar §5.2, {network().title}: task A CIFAR-10 {TASKS['A']}, task B {TASKS['B']}, "
          f"{sc['train_images'] or 'all'} train / {sc['test_images'] or 'all'} test images per "
          f"task, epochs {sc['epochs']}, seeds {sc['seeds']} -> {FLAGS.out}", flush=True)
    missing = []
    if FLAGS.report_only:
        results, sc["seeds"], missing = resumable.finished_seeds(
            caches, sc["seeds"], model_names(), cache_of=lambda name: name.split("_")[0])
        if not sc["seeds"]:
            raise app.UsageError(f"--report_only: no seed of this study has finished under "
                                 f"{FLAGS.out}/runs")
    else:
        results = run_study(sc, caches)
    summary, comparisons = summarize(results)
    experiment.write_results(os.path.join(FLAGS.out, "results.json"), {
        **experiment.environment(),
        "task": f"racecar §5.2 / table 5 at CPU scale: {network().title}, phase I on "
                "CIFAR-10 classes 0-4, phase II on classes 0-4 (AA) and 5-9 (AB)",
        "network": FLAGS.network, "width": FLAGS.width if FLAGS.network == "vgg" else None,
        "seeds": sc["seeds"], "epochs": sc["epochs"], "settings": settings,
        "complete": not missing, "missing_runs": missing,
        "paper_note": "racecar table 5 is the CIFAR VGG, CIFAR-10 -> CIFAR-100: "
                      "a reference, not the same task",
        "results": summary, "comparisons": comparisons,
        "runs": {n: [{k: r[k] for k in ("test_accuracy", "epochs_trained", "sessions",
                                        "seconds", "history")} for r in runs]
                 for n, runs in results.items()},
    })
    _, test = task_data(sc, "A", 0)
    x = next(iter(test))[0].numpy()
    plot_reconstructions(os.path.join(FLAGS.out, "reconstructions.png"), x,
                         {n: results[n][0] for n in model_names()[:2]})
    plot_accuracy(os.path.join(FLAGS.out, "accuracy.png"), summary)
    print(experiment.accuracy_table(
        "\n  test accuracy (task A: classes 0-4, task B: 5-9)", model_names(),
        {n: {**s, "test_accuracy_std": s["test_accuracy_std"] or 0.0, "paper_mean_std": None}
         for n, s in summary.items()}, sc["seeds"]))
    for label, c in comparisons.items():
        print(f"  {label}: {c['difference']:+.3f} (exceeds the seed spread: "
              f"{c['difference_exceeds_seed_spread']})")
    print(f"\nwrote {os.path.abspath(FLAGS.out)}/results.json, accuracy.png, reconstructions.png")


if __name__ == "__main__":
    app.run(main)
