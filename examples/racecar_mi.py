r"""Racecar §4 and appendix A.1: the 12-bit mutual-information study.

Trains the fully connected network of racecar table 7 (294 parameters) on the
12-bit sphere task of Shwartz-Ziv & Tishby (embedded in the package, 3,277
train / 819 test patterns), with table 8's hyper-parameters (batch 512, Adam
lr 4e-4, λ = 1e-2 with the official ``l2_loss`` reduction, 2,000 epochs;
4,000 for Std_B):

* phase I on task A: Std_A (plain), Ort_A (SRIP orthogonality regulariser),
  RR¹_A (racecar loss on the input only) and RR⁶_A (on all six layers);
* phase II, reusing every layer of each phase-I model and training it as a
  plain network (no racecar loss, no regulariser): AA on task A again, AB on
  task B (the labels inverted);
* Std_B: trained on task B from scratch.

Every ``--eval_every`` epochs it records the test accuracy and, for every
layer, the mutual information ``I(X; L)`` and ``I(L; Y)`` on all 4,096
patterns with the binning estimator of Shwartz-Ziv & Tishby (30 equal bins
over tanh's range (-1, 1); ``kr.information``).

It writes, under ``--out``:

* ``results.json``: test accuracy per model and seed, mean ± std, the
  paper's tables 1–2 beside them, every layer's reconstruction error of the
  phase-I models, the MI trajectories of the first seed, seconds per run,
  the command, seeds, epochs and library versions;
* ``mi_planes_phase1.png``, ``mi_planes_AA.png``, ``mi_planes_AB.png``: the
  information planes of figs. 2–4 (first seed; one panel per model, one
  line per layer, points coloured by epoch from black to yellow);
* ``accuracy.png``: test accuracy against epoch for the three phases;
* ``reconstructions.png``: test inputs, regenerated inputs ``I'`` and every
  layer's reconstruction error of the phase-I models;
* ``images/``: ``kr.callbacks.ReconstructionImages`` grids of the phase-I
  models at the end of training.

Finished runs are cached under ``<out>/runs/`` (results and phase-I weights):
a killed study continues from its last finished model.

Usage:

    python examples/racecar_mi.py --out=runs/mi              # paper schedule, 1 seed (make demo)
    python examples/racecar_mi.py --preset=full --out=runs/mi5  # tables 1-2: 5 seeds
    python examples/racecar_mi.py --preset=tiny --out=/tmp/mi  # seconds, for tests
"""

import math
import os
import time

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_reversible as kr  # noqa: E402
import zoo  # noqa: E402
from keras_reversible import data, information  # noqa: E402
from common import experiment  # noqa: E402

PRESETS = {
    # name: epochs of phase I / II (table 8), epochs of Std_B, seeds, evaluation period
    "demo": dict(epochs=2000, epochs_b=4000, seeds=[0], eval_every=20),
    "full": dict(epochs=2000, epochs_b=4000, seeds=[0, 1, 2, 3, 4], eval_every=20),
    "tiny": dict(epochs=4, epochs_b=4, seeds=[0], eval_every=2),
}
# Phase-I models: name -> (depth s, SRIP orthogonality regulariser).
PHASE_ONE = {"Std_A": (0, False), "Ort_A": (0, True), "RR1_A": (1, False), "RR6_A": (6, False)}
# Racecar paper, tables 1 and 2 (5 runs each): mean, std.
PAPER = {
    "Ort_A": (0.971, 0.018), "RR1_A": (0.707, 0.187), "RR6_A": (0.822, 0.045),
    "Std_A": (0.967, 0.018), "Ort_AA": (0.973, 0.015), "RR1_AA": (0.938, 0.056),
    "RR6_AA": (0.994, 0.004), "Std_AA": (0.973, 0.013),
    "Ort_AB": (0.973, 0.017), "RR1_AB": (0.956, 0.022), "RR6_AB": (0.997, 0.003),
    "Std_AB": (0.136, 0.0), "Std_B": (0.974, 0.013),
}
TABLE_1 = ["Ort_A", "RR1_A", "RR6_A", "Std_A", "Ort_AA", "RR1_AA", "RR6_AA", "Std_AA"]
TABLE_2 = ["Ort_AB", "RR1_AB", "RR6_AB", "Std_AB", "Std_B"]
COLORS = {"Std": "tab:orange", "Ort": "tab:red", "RR1": "tab:blue", "RR6": "tab:green"}
MI_BINS, MI_RANGE = 30, (-1.0, 1.0)

# Each of the study's 13 models traces its own tf.functions; TensorFlow's
# retracing detector counts them together and would warn on every model.
tf.get_logger().setLevel("ERROR")

FLAGS = flags.FLAGS
flags.DEFINE_string("out", "runs/racecar_mi", "Output folder.")
flags.DEFINE_enum("preset", "demo", list(PRESETS), "Epochs, seeds and evaluation period.")
flags.DEFINE_integer("epochs", None, "Epochs of every phase-I and phase-II model (paper: 2000).")
flags.DEFINE_integer("epochs_b", None, "Epochs of Std_B, trained from scratch (paper: 4000).")
flags.DEFINE_list("seeds", None, "Seeds, one run of every model each (paper: 5 runs).")
flags.DEFINE_integer("eval_every", None, "Test accuracy and MI every N epochs.")
flags.DEFINE_integer("batch_size", 512, "Batch size (paper table 8: 512).")
flags.DEFINE_float("learning_rate", 4e-4, "Adam learning rate, both phases (table 8: 4e-4).")
flags.DEFINE_float("racecar_weight", 1e-2, "λ of every layer (table 8: 1e-2).")
flags.DEFINE_float("srip_beta", 1e-2, "β of the SRIP regulariser of Ort_A (not given in the paper).")


def color(name):
    return "tab:gray" if name == "Std_B" else COLORS[name.split("_")[0]]


def train(model, task, epochs, label, seed, mi_data, extra_callbacks=()):
    """Trains ``model`` on ``task``; returns its test-accuracy curve and MI trajectory."""
    (x, y), (x_test, y_test) = task
    keras.utils.set_random_seed(seed)
    steps = math.ceil(len(x) / FLAGS.batch_size)
    # A repeated tf.data pipeline: ~10x less per-epoch overhead than numpy arrays.
    train_ds = (tf.data.Dataset.from_tensor_slices((x, y))
                .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
                .batch(FLAGS.batch_size).repeat())
    test_ds = tf.data.Dataset.from_tensor_slices((x_test, y_test)).batch(len(x_test))
    model.compile(keras.optimizers.Adam(FLAGS.learning_rate),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], steps_per_execution=steps)
    every = eval_every(epochs)
    plane = information.InformationPlane(*mi_data, every=every, num_bins=MI_BINS,
                                         value_range=MI_RANGE)
    start = time.time()
    history = model.fit(
        train_ds, steps_per_epoch=steps, epochs=epochs, verbose=0, shuffle=False,  # train_ds shuffles
        validation_data=test_ds, validation_freq=every,
        callbacks=[plane, experiment.EpochProgress(label, max(every, epochs // 4), epochs),
                   *extra_callbacks],
    )
    accuracy = history.history["val_accuracy"]
    return {
        "test_accuracy": float(accuracy[-1]),
        "curve": [[every * (i + 1), float(a)] for i, a in enumerate(accuracy)],
        "information_plane": plane.history,
        "seconds": time.time() - start,
    }


def eval_every(epochs):
    return min(FLAGS.eval_every, epochs)


def phase_one(name, seed, epochs, task_a, mi_data, cache, images_dir):
    depth, ortho = PHASE_ONE[name]
    keras.utils.set_random_seed(seed)
    model = zoo.racecar_mi_net(depth=depth, racecar_weight=FLAGS.racecar_weight,
                               kernel_regularizer=kr.SRIP(FLAGS.srip_beta) if ortho else None)
    key = f"{name}-seed{seed}"
    run = cache.restore(key, model)
    if run is not None:
        return model, run
    x_test = task_a[1][0]
    images = kr.callbacks.ReconstructionImages(x_test[:16], images_dir, every=epochs,
                                               prefix=key, value_range=(-1, 1))
    run = train(model, task_a, epochs, f"{name} seed {seed}", seed, mi_data, [images])
    regenerated = model.reconstruct(x_test)
    pairs = model.reverse_activations(x_test, depth=model.num_constrained)
    run.update(
        layer_relative_error=[float(np.linalg.norm(r - f) / np.linalg.norm(f)) for f, r in pairs],
        reconstruction_mse=float(np.mean((regenerated - x_test) ** 2)),
        reconstruction_examples=regenerated[:16].tolist(),
    )
    cache.put(key, run)
    cache.put_weights(key, model)
    return model, run


def load_task(seed, task):
    """Task ``"A"`` or ``"B"`` split by ``seed``, and the MI data: all 4,096 patterns, labelled."""
    split = data.load_mi_sphere(seed=seed, task=task)
    (x, y), (x_test, y_test) = split
    return split, (np.concatenate([x, x_test]), np.concatenate([y, y_test]))


def run_study(seeds, epochs, epochs_b, cache, images_dir):
    results = {name: [] for name in TABLE_1 + TABLE_2}

    def cached_or_train(key, make_model, task, n_epochs, mi_data, seed):
        run = cache.get(key)
        if run is None:
            run = train(make_model(), task, n_epochs, key.replace("-seed", " seed "), seed, mi_data)
            cache.put(key, run)
        else:
            print(f"  {key}: cached", flush=True)
        return run

    for seed in seeds:
        task_a, mi_a = load_task(seed, "A")
        task_b, mi_b = load_task(seed, "B")
        for name in PHASE_ONE:
            model, run = phase_one(name, seed, epochs, task_a, mi_a, cache, images_dir)
            results[name].append(run)
            base = name[:-2]
            for suffix, task, mi_data in (("AA", task_a, mi_a), ("AB", task_b, mi_b)):
                key = f"{base}_{suffix}-seed{seed}"
                plain = lambda: model.to_standard(keep_regularizers=False)  # noqa: E731
                results[f"{base}_{suffix}"].append(
                    cached_or_train(key, plain, task, epochs, mi_data, seed))
            report(seed, [name, f"{base}_AA", f"{base}_AB"], results)

        def std_b():
            keras.utils.set_random_seed(seed)
            return zoo.racecar_mi_net(depth=0).to_standard()

        results["Std_B"].append(cached_or_train(f"Std_B-seed{seed}", std_b, task_b, epochs_b, mi_b, seed))
        report(seed, ["Std_B"], results)
    return results


def report(seed, names, results):
    print("  seed {}: ".format(seed) + ", ".join(
        f"{n} {results[n][-1]['test_accuracy']:.3f}" for n in names), flush=True)


def summarise(results):
    summary = {}
    for name, runs in results.items():
        summary[name] = experiment.accuracy_summary(runs, PAPER[name])
        if name in PHASE_ONE:
            summary[name]["reconstruction_mse"] = [r["reconstruction_mse"] for r in runs]
            summary[name]["layer_relative_error_mean"] = np.mean(
                [r["layer_relative_error"] for r in runs], axis=0).tolist()
    return summary


def _pyplot():
    plt = experiment.pyplot()

    return plt


def plot_information_planes(path, title, names, results):
    """One panel per model: a line per layer through (I(X;L), I(L;Y)), coloured by epoch."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(names), figsize=(3.4 * len(names), 3.6), squeeze=False,
                             sharex=True, sharey=True, constrained_layout=True)
    last_epoch = max(results[name][0]["information_plane"][-1]["epoch"] for name in names)
    for ax, name in zip(axes[0], names):
        history = results[name][0]["information_plane"]
        epochs = np.array([h["epoch"] for h in history])
        points = np.array([h["layers"] for h in history])  # (records, layers, 2)
        for layer in range(points.shape[1]):
            ax.plot(points[:, layer, 0], points[:, layer, 1], color="0.75", lw=0.6, zorder=1)
            scatter = ax.scatter(points[:, layer, 0], points[:, layer, 1], c=epochs, s=9,
                                 cmap="inferno", vmin=0, vmax=last_epoch, zorder=2)
            ax.annotate(f"L{layer + 1}", points[-1, layer], fontsize=7, xytext=(3, -8),
                        textcoords="offset points")
        accuracy = results[name][0]["test_accuracy"]
        ax.set_title(f"{name} (test acc. {accuracy:.3f})", fontsize=9)
        ax.set_xlabel("I(X; L) [bits]")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("I(L; Y) [bits]")
    fig.colorbar(scatter, ax=axes[0].tolist(), label="epoch", shrink=0.85)
    fig.suptitle(title, fontsize=10)
    experiment.save_figure(fig, path)


def plot_accuracy(path, results):
    plt = _pyplot()
    panels = [("phase I, task A", ["Std_A", "Ort_A", "RR1_A", "RR6_A"]),
              ("phase II, task A again (AA)", ["Std_AA", "Ort_AA", "RR1_AA", "RR6_AA"]),
              ("phase II, task B (AB) and Std_B", ["Std_AB", "Ort_AB", "RR1_AB", "RR6_AB", "Std_B"])]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), sharey=True, constrained_layout=True)
    for ax, (title, names) in zip(axes, panels):
        for name in names:
            for i, run in enumerate(results[name]):
                epochs, acc = zip(*run["curve"])
                ax.plot(epochs, acc, color=color(name), alpha=0.85, lw=1,
                        label=name if i == 0 else None)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    axes[0].set_ylabel("test accuracy")
    experiment.save_figure(fig, path)


def plot_reconstructions(path, x_test, results):
    """Inputs vs I' (patterns sorted by bit count) and every layer's reconstruction error."""
    plt = _pyplot()
    order = np.argsort(x_test[:16].sum(axis=1), kind="stable")
    panels = [("input I (16 test patterns)", x_test[:16][order])]
    for name in PHASE_ONE:
        run = results[name][0]
        panels.append((f"{name}: I' (MSE {run['reconstruction_mse']:.3f})",
                       np.asarray(run["reconstruction_examples"])[order]))
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(2.9 * (len(panels) + 1), 4.4),
                             gridspec_kw={"width_ratios": [1] * len(panels) + [1.6]})
    for ax, (title, values) in zip(axes, panels):
        image = ax.imshow(values, cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("bit")
        ax.set_yticks([])
    axes[0].set_ylabel("test pattern (sorted by number of 1s)")
    fig.colorbar(image, ax=axes[: len(panels)], shrink=0.7, location="bottom")
    ax = axes[-1]
    width = 0.8 / len(PHASE_ONE)
    for i, name in enumerate(PHASE_ONE):
        err = np.mean([r["layer_relative_error"] for r in results[name]], axis=0)
        ax.bar(np.arange(1, len(err) + 1) + (i - (len(PHASE_ONE) - 1) / 2) * width, err, width,
               label=name, color=color(name))
    ax.set_yscale("log")
    ax.set_xlabel("constrained point m (L_1 = input)")
    ax.set_title("||L'_m - L_m|| / ||L_m||, test set", fontsize=9)
    ax.legend(fontsize=8)
    fig.suptitle("Phase I: regenerated inputs I' and every layer's reconstruction "
                 "(the reverse pass starts at the 2-unit output)", fontsize=10)
    experiment.save_figure(fig, path, bbox_inches="tight")


def main(argv):
    del argv
    scale = experiment.resolve_preset(PRESETS[FLAGS.preset], FLAGS)
    epochs, epochs_b, seeds = scale["epochs"], scale["epochs_b"], scale["seeds"]
    FLAGS.eval_every = scale["eval_every"]
    if min(epochs, epochs_b) < 1:
        raise app.UsageError(f"--epochs={epochs} and --epochs_b={epochs_b} must be >= 1.")
    if FLAGS.eval_every < 1 or epochs % eval_every(epochs) or epochs_b % eval_every(epochs_b):
        raise app.UsageError(f"--eval_every={FLAGS.eval_every} must be >= 1 and divide "
                             f"--epochs={epochs} and --epochs_b={epochs_b}.")
    settings = {
        "epochs": epochs, "epochs_b": epochs_b, "batch_size": FLAGS.batch_size,
        "learning_rate": FLAGS.learning_rate, "racecar_weight": FLAGS.racecar_weight,
        "srip_beta": FLAGS.srip_beta, "eval_every": FLAGS.eval_every,
        "result_format": 3,  # bump when a run records new fields
    }
    cache = experiment.RunCache(FLAGS.out, settings)
    print(f"racecar MI study: phase I {list(PHASE_ONE)}, phase II AA/AB, Std_B; "
          f"seeds {seeds}; {epochs} epochs ({epochs_b} for Std_B) -> {FLAGS.out}", flush=True)
    start = time.time()
    results = run_study(seeds, epochs, epochs_b, cache, os.path.join(FLAGS.out, "images"))
    summary = summarise(results)

    headline = {
        "Std_AB": summary["Std_AB"]["test_accuracy_mean"],
        "RR6_AB": summary["RR6_AB"]["test_accuracy_mean"],
        "paper": {"Std_AB": PAPER["Std_AB"][0], "RR6_AB": PAPER["RR6_AB"][0]},
    }
    # Task B's labels are balanced, so guessing scores about 0.5.
    headline["criteria"] = "Std_AB collapses: < 0.6; RR6_AB transfers: > 0.9"
    headline["holds"] = bool(headline["Std_AB"] < 0.6 and headline["RR6_AB"] > 0.9)
    out = {
        **experiment.environment(),
        "task": "12-bit sphere task (racecar §4, appendix A.1): 3277 train / 819 test; "
                "task B = task A with the labels inverted",
        "epochs": epochs, "epochs_b": epochs_b, "seeds": seeds,
        "settings": settings,
        "mi_estimator": {"method": "binning (Shwartz-Ziv & Tishby 2017)", "bins": MI_BINS,
                         "value_range": MI_RANGE, "samples": "all 4096 patterns",
                         "information_plane_seed": seeds[0]},
        "results": summary,
        "headline": headline,
        "information_planes": {
            name: results[name][0]["information_plane"] for name in results
        },
        "wall_seconds": time.time() - start,
    }
    plot_information_planes(os.path.join(FLAGS.out, "mi_planes_phase1.png"),
                            "Phase I (task A): MI planes, cf. racecar fig. 2",
                            list(PHASE_ONE), results)
    plot_information_planes(os.path.join(FLAGS.out, "mi_planes_AA.png"),
                            "Phase II, task A again (AA), cf. racecar fig. 3",
                            ["Std_AA", "Ort_AA", "RR1_AA", "RR6_AA"], results)
    plot_information_planes(os.path.join(FLAGS.out, "mi_planes_AB.png"),
                            "Phase II, task B = inverted labels (AB) and Std_B, cf. racecar fig. 4",
                            ["Std_AB", "Ort_AB", "RR1_AB", "RR6_AB", "Std_B"], results)
    plot_accuracy(os.path.join(FLAGS.out, "accuracy.png"), results)
    x_test = data.load_mi_sphere(seed=seeds[0], task="A")[1][0]
    plot_reconstructions(os.path.join(FLAGS.out, "reconstructions.png"), x_test, results)
    experiment.write_results(os.path.join(FLAGS.out, "results.json"), out)

    print("\n" + experiment.accuracy_table(
        "Table 1 layout (task A; phase I and phase II AA): test accuracy", TABLE_1, summary, seeds))
    print("\n" + experiment.accuracy_table(
        "Table 2 layout (transfer to task B = inverted labels): test accuracy",
        TABLE_2, summary, seeds))
    print("\n  phase I   MSE of I'   ||L'_m - L_m||/||L_m||, m = 1..6")
    for name in PHASE_ONE:
        s = summary[name]
        layers = " ".join(f"{e:.2g}" for e in s["layer_relative_error_mean"])
        print(f"  {name:<8}  {np.mean(s['reconstruction_mse']):.3f}       {layers}")
    verdict = "holds" if headline["holds"] else "does NOT hold"
    print(f"\nheadline (paper: Std_AB {PAPER['Std_AB'][0]} collapses, RR6_AB {PAPER['RR6_AB'][0]} "
          f"transfers): Std_AB {headline['Std_AB']:.3f}, RR6_AB {headline['RR6_AB']:.3f} -> {verdict}")
    print(f"\nwrote {os.path.abspath(FLAGS.out)}/results.json, mi_planes_phase1.png, "
          f"mi_planes_AA.png, mi_planes_AB.png, accuracy.png, reconstructions.png "
          f"({time.time() - start:.0f}s)")


if __name__ == "__main__":
    app.run(main)
