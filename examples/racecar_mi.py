r"""Racecar §4: the 12-bit mutual-information task, standard vs racecar training.

Trains the fully connected network of racecar table 7 (294 parameters) on the
12-bit sphere task of Shwartz-Ziv & Tishby (embedded in the package, 80 %/20 %
split), as Std_A (no reverse pass) and RR⁶_A (racecar loss on all six
layers), with table 8's hyper-parameters: batch 512, Adam lr 4e-4, λ = 1e-2
with the official ``l2_loss`` reduction, 2,000 epochs.

It writes, under ``--out``:

* ``results.json``: test accuracy per model and seed (mean ± std), the
  reconstruction error of ``I'`` on the test set, the paper's table-1 numbers
  beside ours, the command, seeds, epochs and library versions;
* ``reconstructions.png``: test inputs and their regenerated inputs ``I'``;
* ``accuracy.png``: test accuracy against epoch.

Finished runs are cached under ``<out>/runs/``: a killed study continues from
its last finished model.

Usage:

    python examples/racecar_mi.py --out=runs/mi            # paper schedule, 1 seed
    python examples/racecar_mi.py --seeds=0,1,2,3,4        # table 1 has 5 runs
    python examples/racecar_mi.py --preset=tiny --out=/tmp/mi   # seconds, for tests
"""

import os
import sys
import time

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import zoo  # noqa: E402
from keras_reversible import data, experiment  # noqa: E402

PRESETS = {
    # name: (epochs, seeds)
    "demo": (2000, [0]),
    "full": (2000, [0, 1, 2, 3, 4]),
    "tiny": (3, [0]),
}
# Racecar paper, table 1 (phase I, task A, 5 runs): mean, std.
PAPER_TABLE1 = {"Std_A": (0.967, 0.018), "RR6_A": (0.822, 0.045)}
MODELS = {"Std_A": 0, "RR6_A": 6}  # name -> depth s

FLAGS = flags.FLAGS
flags.DEFINE_string("out", "runs/racecar_mi", "Output folder.")
flags.DEFINE_enum("preset", "demo", list(PRESETS), "Epochs and seeds preset.")
flags.DEFINE_integer("epochs", None, "Epochs per model (overrides the preset; paper: 2000).")
flags.DEFINE_list("seeds", None, "Seeds (overrides the preset; paper: 5 runs).")
flags.DEFINE_integer("batch_size", 512, "Batch size (paper table 8: 512).")
flags.DEFINE_float("learning_rate", 4e-4, "Adam learning rate (paper table 8: 4e-4).")
flags.DEFINE_float("racecar_weight", 1e-2, "λ for every layer (paper table 8: 1e-2).")
flags.DEFINE_integer("eval_every", 50, "Evaluate the test accuracy every N epochs.")


def train_one(name, depth, seed, epochs, split):
    (x_train, y_train), (x_test, y_test) = split
    keras.utils.set_random_seed(seed)
    model = zoo.racecar_mi_net(depth=depth, racecar_weight=FLAGS.racecar_weight)
    model.compile(
        keras.optimizers.Adam(FLAGS.learning_rate),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        steps_per_execution=8,
    )
    curve = []

    class TestAccuracy(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if (epoch + 1) % FLAGS.eval_every == 0 or epoch + 1 == epochs:
                acc = model.evaluate(x_test, y_test, batch_size=1024, verbose=0, return_dict=True)
                curve.append((epoch + 1, acc["accuracy"]))

    start = time.time()
    model.fit(
        x_train, y_train, batch_size=FLAGS.batch_size, epochs=epochs, verbose=0,
        callbacks=[TestAccuracy(), experiment.EpochProgress(f"{name} seed {seed}", max(1, epochs // 5), epochs)],
    )
    seconds = time.time() - start
    rec = model.reconstruct(x_test)
    pairs = model.reverse_activations(x_test, depth=model.num_constrained)
    return {
        "layer_relative_error": [
            float(np.linalg.norm(r - f) / np.linalg.norm(f)) for f, r in pairs
        ],
        "test_accuracy": float(curve[-1][1]),
        "curve": curve,
        "reconstruction_mse": float(np.mean((rec - x_test) ** 2)),
        "seconds": seconds,
        "reconstruction_examples": rec[:16].tolist(),
    }


def plot_reconstructions(path, x_test, results):
    """Inputs vs I' (examples sorted by bit count) and per-layer errors."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = np.argsort(x_test[:16].sum(axis=1), kind="stable")
    panels = [("input I (16 test patterns)", x_test[:16][order])]
    for name, runs in results.items():
        rec = np.asarray(runs[0]["reconstruction_examples"])[order]
        panels.append((f"{name}: I' (MSE {runs[0]['reconstruction_mse']:.3f})", rec))
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(3.3 * (len(panels) + 1), 4.4),
                             gridspec_kw={"width_ratios": [1] * len(panels) + [1.4]})
    for ax, (title, values) in zip(axes, panels):
        im = ax.imshow(values, cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("bit")
        ax.set_yticks([])
    axes[0].set_ylabel("test pattern (sorted by number of 1s)")
    fig.colorbar(im, ax=axes[: len(panels)], shrink=0.7, location="bottom")
    ax = axes[-1]
    width = 0.8 / len(results)
    for i, (name, runs) in enumerate(results.items()):
        err = np.mean([r["layer_relative_error"] for r in runs], axis=0)
        ax.bar(np.arange(1, len(err) + 1) + (i - (len(results) - 1) / 2) * width, err, width,
               label=name, color={"Std_A": "tab:orange", "RR6_A": "tab:green"}.get(name))
    ax.set_yscale("log")
    ax.set_xlabel("constrained point m (L_1 = input)")
    ax.set_title("||L'_m - L_m|| / ||L_m||, test set", fontsize=9)
    ax.legend(fontsize=8)
    fig.suptitle("12-bit MI task: regenerated inputs I' and every layer's reconstruction "
                 "(the reverse pass starts at the 2-unit output)", fontsize=10)
    with experiment.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png", bbox_inches="tight")
    plt.close(fig)


def plot_curves(path, results):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"Std_A": "tab:orange", "RR6_A": "tab:green"}
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, runs in results.items():
        for i, run in enumerate(runs):
            epochs, acc = zip(*run["curve"])
            ax.plot(epochs, acc, color=colors.get(name), alpha=0.8,
                    label=name if i == 0 else None)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy")
    ax.set_title("12-bit MI task, phase I (task A)")
    ax.legend()
    ax.grid(alpha=0.3)
    with experiment.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def main(argv):
    del argv
    epochs, seeds = PRESETS[FLAGS.preset]
    epochs = FLAGS.epochs or epochs
    seeds = [int(s) for s in FLAGS.seeds] if FLAGS.seeds else seeds
    settings = {
        "epochs": epochs, "batch_size": FLAGS.batch_size,
        "learning_rate": FLAGS.learning_rate, "racecar_weight": FLAGS.racecar_weight,
        "result_format": 2,  # bump when a run records new fields
    }
    cache = experiment.RunCache(FLAGS.out, settings)
    print(f"racecar MI study: models {list(MODELS)}, seeds {seeds}, {epochs} epochs -> {FLAGS.out}")
    results = {name: [] for name in MODELS}
    for seed in seeds:
        split = data.load_mi_sphere(seed=seed, task="A")
        for name, depth in MODELS.items():
            key = f"{name}-seed{seed}"
            run = cache.get(key)
            if run is None:
                run = train_one(name, depth, seed, epochs, split)
                cache.put(key, run)
            else:
                print(f"  {key}: cached")
            results[name].append(run)
            print(f"  {key}: test accuracy {run['test_accuracy']:.3f}, "
                  f"reconstruction MSE {run['reconstruction_mse']:.3f}", flush=True)

    x_test = data.load_mi_sphere(seed=seeds[0], task="A")[1][0]
    summary = {}
    for name, runs in results.items():
        acc = [r["test_accuracy"] for r in runs]
        summary[name] = {
            "test_accuracy": acc,
            "test_accuracy_mean": float(np.mean(acc)),
            "test_accuracy_std": float(np.std(acc)),
            "reconstruction_mse": [r["reconstruction_mse"] for r in runs],
            "layer_relative_error_mean": np.mean(
                [r["layer_relative_error"] for r in runs], axis=0).tolist(),
            "seconds_per_run": [r["seconds"] for r in runs],
            "paper_table1_mean_std": PAPER_TABLE1[name],
        }
    out = {
        **experiment.environment(),
        "task": "12-bit sphere task A (racecar §4, appendix A.1), 3277 train / 819 test",
        "epochs": epochs,
        "seeds": seeds,
        "settings": settings,
        "results": summary,
    }
    plot_reconstructions(os.path.join(FLAGS.out, "reconstructions.png"), x_test, results)
    plot_curves(os.path.join(FLAGS.out, "accuracy.png"), results)
    experiment.write_json(os.path.join(FLAGS.out, "results.json"), out)
    print("\n  model   test accuracy (ours)   paper table 1   MSE of I'   "
          "||L'_m - L_m||/||L_m||, m = 1..6")
    for name, s in summary.items():
        paper = "{:.3f} ± {:.3f}".format(*s["paper_table1_mean_std"])
        layers = " ".join(f"{e:.2g}" for e in s["layer_relative_error_mean"])
        print(f"  {name:<7} {s['test_accuracy_mean']:.3f} ± {s['test_accuracy_std']:.3f}"
              f"          {paper}   {np.mean(s['reconstruction_mse']):.3f}       {layers}")
    out_dir = os.path.abspath(FLAGS.out)
    print(f"\nwrote {out_dir}/results.json, reconstructions.png, accuracy.png")


if __name__ == "__main__":
    app.run(main)
