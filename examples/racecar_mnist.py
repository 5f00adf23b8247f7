r"""Racecar §5.1 and appendix A.2: MNIST and transfer to motion-blurred MNIST.

Trains the CNN of racecar table 9 (38,645 parameters) with table 10's
settings (batch 64, λ = 1e-5 with the official ``l2_loss`` reduction, Adam
lr 1e-3 in phase I and 1e-4 in phase II):

* phase I on MNIST (task A): Std_A, Ort_A (SRIP regulariser) and RR³_A
  (racecar loss on the three convolutions);
* phase II, reusing every layer as a plain network: AA on MNIST again, AB on
  motion-blurred MNIST (task B; ``kr.data.load_motion_blur_mnist_arrays``);
* Std_B: trained on task B from scratch.

The paper trains on 55,000 images for 100 (phase I), 400 (AA) and 700 (AB)
epochs, 5 runs: ``--preset=full``. ``--preset=fulldata`` keeps its 55,000
images and 5 seeds with the epochs 2 CPU cores allow (15 / 10 / 15); the
default ``--preset=cpu`` is a smaller scale (12,000 training images, 3 epochs
per model, 1 seed). ``results.json`` states the scale.

It writes, under ``--out``:

* ``results.json``: test accuracy per model and seed, mean ± std beside the
  paper's tables 3–4, the accuracy gained over each run's last third of
  epochs (``late_gain``: near 0 once the curve is flat), training seconds
  per epoch of every model (median over epochs after the first, without
  evaluation; the paper: RR³ is 61 % slower than Std), first-layer singular values, the command, seeds,
  epochs and library versions;
* ``regenerated_inputs.png``: fig. 5, the regenerated inputs ``I'`` of
  Ort_A, Std_A and RR³_A beside the reference images;
* ``first_layer_svd.png``: singular values and singular vectors of the
  first-layer kernels of Std_A, Ort_A and RR³_A (cf. the ``SVD-example`` of
  the official racecar repository);
* ``accuracy.png``: test accuracy per epoch of every phase;
* ``images/``: ``kr.callbacks.ReconstructionImages`` grids of the phase-I
  models.

Every run is backed up after each epoch under ``<out>/runs/``
(``common.resumable``): a killed study, rerun with the same command, continues
after the last finished epoch. ``--report_only`` writes ``results.json`` and
the figures from the seeds finished so far (``complete: false``).

Usage:

    python examples/racecar_mnist.py --out=runs/mnist                  # CPU scale
    python examples/racecar_mnist.py --preset=fulldata --out=runs/mnist55k  # 55,000 images, 5 seeds
    python examples/racecar_mnist.py --preset=full --out=runs/mnist5   # the paper's epochs
    python examples/racecar_mnist.py --preset=tiny --out=/tmp/mnist    # seconds, tests
"""

import os
import time

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_reversible as kr  # noqa: E402
import zoo  # noqa: E402
from keras_reversible import data  # noqa: E402
from common import experiment, resumable  # noqa: E402
from keras_reversible.data.mnist import digits_dataset  # noqa: E402

PRESETS = {
    # training images, test images, epochs of phase I / AA / AB and Std_B, seeds
    "cpu": dict(train_images=12000, test_images=10000, epochs_a=3, epochs_aa=3, epochs_ab=3,
                seeds=[0]),
    "full": dict(train_images=55000, test_images=10000, epochs_a=100, epochs_aa=400,
                 epochs_ab=700, seeds=[0, 1, 2, 3, 4]),
    # The paper's data and 5 runs, with the epochs 2 CPU cores allow: 135 epochs a seed,
    # 41-45 s each on shared cores (48-52 ms a step), so up to 1.7 h a seed.
    "fulldata": dict(train_images=55000, test_images=10000, epochs_a=15, epochs_aa=10,
                     epochs_ab=15, seeds=[0, 1, 2, 3, 4]),
    "tiny": dict(train_images=256, test_images=256, epochs_a=1, epochs_aa=1, epochs_ab=1,
                 seeds=[0]),
}
PHASE_ONE = {"Std_A": (0, False), "Ort_A": (0, True), "RR3_A": (3, False)}
# Racecar paper, tables 3 and 4 (5 runs each): mean, std.
PAPER = {
    "Ort_A": (0.895, 0.0689), "Std_A": (0.982, 0.0007), "RR3_A": (0.982, 0.0007),
    "Ort_AA": (0.981, 0.0011), "Std_AA": (0.984, 0.0009), "RR3_AA": (0.986, 0.0006),
    "Ort_AB": (0.913, 0.0485), "Std_AB": (0.952, 0.0051), "RR3_AB": (0.961, 0.0044),
    "Std_B": (0.929, 0.0494),
}
# Racecar fig. 16: seconds per epoch on a GTX 1080 Ti.
PAPER_SECONDS_PER_EPOCH = {"RR3_A": 5.675, "Std_A": 3.522, "Ort_A": 4.969}
TABLE_3 = ["Ort_A", "Std_A", "RR3_A", "Ort_AA", "Std_AA", "RR3_AA"]
TABLE_4 = ["Ort_AB", "Std_AB", "RR3_AB", "Std_B"]
COLORS = {"Std": "tab:orange", "Ort": "tab:red", "RR3": "tab:blue"}

# Each of the study's models traces its own tf.functions; TensorFlow's
# retracing detector counts them together and would warn on every model.
tf.get_logger().setLevel("ERROR")

FLAGS = flags.FLAGS
flags.DEFINE_string("out", "runs/racecar_mnist", "Output folder.")
flags.DEFINE_enum("preset", "cpu", list(PRESETS), "Scale: images, epochs and seeds.")
flags.DEFINE_integer("train_images", None, "Training images of each task (paper: 55,000).")
flags.DEFINE_integer("test_images", None, "Test images of each task (10,000).")
flags.DEFINE_integer("epochs_a", None, "Phase-I epochs (paper table 10: 100).")
flags.DEFINE_integer("epochs_aa", None, "Phase-II epochs on task A (table 10: 400).")
flags.DEFINE_integer("epochs_ab", None, "Phase-II epochs on task B, and of Std_B (table 10: 700).")
flags.DEFINE_list("seeds", None, "Seeds (paper: 5 runs).")
flags.DEFINE_integer("batch_size", 64, "Batch size (table 10: 64).")
flags.DEFINE_float("learning_rate_a", 1e-3, "Adam learning rate of phase I (table 10: 1e-3).")
flags.DEFINE_float("learning_rate_b", 1e-4, "Adam learning rate of phase II and Std_B (1e-4).")
flags.DEFINE_float("racecar_weight", 1e-5, "λ of every convolution (table 10: 1e-5).")
flags.DEFINE_float("srip_beta", 0.1, "β of Ort's SRIP regulariser (the official SVD example's "
                   "orthofactor; the paper gives none).")
flags.DEFINE_enum("source", "auto", ["auto", "local", "tfds"], "MNIST files or tensorflow-datasets.")
resumable.define_flags("the seeds whose ten runs have finished")


def color(name):
    return "tab:gray" if name == "Std_B" else COLORS[name.split("_")[0]]


def load_task(task, train_images, test_images):
    """Task ``"A"`` (MNIST) or ``"B"`` (motion-blurred MNIST): the first images, uint8 arrays."""
    load = {"A": data.load_mnist_arrays, "B": data.load_motion_blur_mnist_arrays}[task]
    (x, y), (xt, yt) = load("train", source=FLAGS.source), load("test", source=FLAGS.source)
    return (x[:train_images], y[:train_images]), (xt[:test_images], yt[:test_images])


def load_tasks(train_images, test_images):
    """Task A (MNIST) and task B (motion-blurred MNIST), uint8 arrays."""
    return {task: load_task(task, train_images, test_images) for task in ("A", "B")}


def as_float(x):
    return (x.astype("float32") / 255.0)[..., None]


def train(model, task, epochs, learning_rate, key, seed, cache, settings, callbacks=()):
    """Trains (or resumes after its last backed-up epoch) run ``key``; returns its result."""
    (x, y), (x_test, y_test) = task
    start = resumable.start_epoch(cache, key, settings)
    keras.utils.set_random_seed(seed)
    # A resumed run draws a new order, so it does not replay its first epochs'.
    train_ds = digits_dataset(x, y, "train", FLAGS.batch_size, None, True,
                              seed + 100_003 * start, False)
    test_ds = digits_dataset(x_test, y_test, "test", 1000, None, False, seed, False)
    model.compile(keras.optimizers.Adam(learning_rate),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    trained = resumable.fit(model, train_ds, test_ds, epochs, cache, key, settings,
                            label=key.replace("-seed", " seed "), start=start,
                            stop_after=FLAGS.stop_after_epochs, callbacks=callbacks)
    log = trained["epochs"]
    curve = [[e, log[e]["val_accuracy"]] for e in sorted(log)]
    # The first epoch also traces the train step; leave it out when there are others.
    steady = [log[e]["train_seconds"] for e in sorted(log)[1:]] or [log[1]["train_seconds"]]
    return {
        "test_accuracy": float(model.evaluate(test_ds, verbose=0, return_dict=True)["accuracy"]),
        "curve": curve,
        "seconds": float(sum(entry["seconds"] for entry in log.values())),
        "seconds_per_epoch": float(np.median(steady)),
        "sessions": trained["sessions"],
    }


def first_layer_svd(model):
    """Singular values and left singular vectors (3×3 patches) of conv1's kernel."""
    kernel = model.get_layer("conv1").kernel.numpy()  # (3, 3, 1, 64)
    matrix = kernel.reshape(-1, kernel.shape[-1])  # (9, 64): one column per filter
    u, s, _ = np.linalg.svd(matrix, full_matrices=False)
    return {"singular_values": s.tolist(), "singular_vectors": u.T.reshape(-1, 3, 3).tolist()}


def phase_one(name, seed, tasks, epochs, cache, images_dir):
    """Ort_A, Std_A or RR3_A of ``seed``, trained or restored: (the model, its result)."""
    depth, ortho = PHASE_ONE[name]
    keras.utils.set_random_seed(seed)
    model = zoo.racecar_mnist_cnn(depth=depth, racecar_weight=FLAGS.racecar_weight,
                                  kernel_regularizer=kr.SRIP(FLAGS.srip_beta) if ortho else None)
    key = f"{name}-seed{seed}"
    run = cache.restore(key, model)
    if run is not None:
        return model, run
    x_test = as_float(tasks["A"][1][0][:16])
    images = kr.callbacks.ReconstructionImages(x_test[:8], images_dir, every=epochs,
                                               prefix=key, value_range=(0, 1))
    run = train(model, tasks["A"], epochs, FLAGS.learning_rate_a, key, seed, cache,
                cache.settings, [images])
    regenerated = model.reconstruct(x_test)
    run.update(
        reconstruction_mse=float(np.mean((regenerated - x_test) ** 2)),
        reconstruction_examples=regenerated[:8, ..., 0].tolist(),
        first_layer_svd=first_layer_svd(model),
    )
    cache.put_weights(key, model)  # before finish: a kill between them retrains nothing
    resumable.finish(cache, key, run)
    return model, run


def run_study(seeds, tasks, epochs, cache, images_dir):
    """{model: [result per seed]} of every seed, training what is not cached."""
    results = {name: [] for name in TABLE_3 + TABLE_4}

    def cached_or_train(key, make_model, task, n_epochs, seed):
        run = cache.get(key)
        if run is None:
            run = train(make_model(), task, n_epochs, FLAGS.learning_rate_b, key, seed, cache,
                        cache.settings)
            resumable.finish(cache, key, run)
        else:
            print(f"  {key}: cached", flush=True)
        return run

    for seed in seeds:
        for name in PHASE_ONE:
            model, run = phase_one(name, seed, tasks, epochs["a"], cache, images_dir)
            results[name].append(run)
            base = name[:-2]
            for suffix in ("AA", "AB"):
                task = tasks[suffix[1]]
                plain = lambda: model.to_standard(keep_regularizers=False)  # noqa: E731
                results[f"{base}_{suffix}"].append(cached_or_train(
                    f"{base}_{suffix}-seed{seed}", plain, task, epochs[suffix.lower()], seed))
            print(f"  seed {seed}: " + ", ".join(
                f"{n} {results[n][-1]['test_accuracy']:.4f}"
                for n in (name, f"{base}_AA", f"{base}_AB")), flush=True)

        def std_b():
            keras.utils.set_random_seed(seed)
            return zoo.racecar_mnist_cnn(depth=0).to_standard()

        results["Std_B"].append(
            cached_or_train(f"Std_B-seed{seed}", std_b, tasks["B"], epochs["ab"], seed))
        print(f"  seed {seed}: Std_B {results['Std_B'][-1]['test_accuracy']:.4f}", flush=True)
    return results


def late_gain(run):
    """Test accuracy gained over the last third of a run's epochs: ~0 once the curve is flat."""
    accuracy = [a for _, a in run["curve"]]
    return float(accuracy[-1] - accuracy[-1 - len(accuracy) // 3])


def plot_regenerated_inputs(path, reference, results):
    """Fig. 5: a row per model (Ort_A, Std_A, RR³_A) and the reference row."""
    plt = experiment.pyplot()
    rows = [(f"{name}\nMSE {results[name][0]['reconstruction_mse']:.3g}",
             np.asarray(results[name][0]["reconstruction_examples"]))
            for name in ("Ort_A", "Std_A", "RR3_A")]
    rows.append(("reference", reference))
    cols = len(reference)
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.2 * cols + 1.2, 1.25 * len(rows)))
    for r, (label, images) in enumerate(rows):
        for c in range(cols):
            ax = axes[r, c]
            image = images[c]
            span = image.max() - image.min()
            ax.imshow((image - image.min()) / span if span > 0 else image, cmap="gray")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle("Regenerated inputs I' (racecar fig. 5), first seed; each image min-max "
                 "scaled for display", fontsize=10)
    experiment.save_figure(fig, path, bbox_inches="tight")


def plot_first_layer_svd(path, results):
    plt = experiment.pyplot()
    names = list(PHASE_ONE)
    fig = plt.figure(figsize=(11, 4.2), constrained_layout=True)
    grid = fig.add_gridspec(len(names), 10, width_ratios=[6] + [1] * 9)
    ax = fig.add_subplot(grid[:, 0])
    for name in names:
        s = np.asarray(results[name][0]["first_layer_svd"]["singular_values"])
        ax.semilogy(np.arange(1, len(s) + 1), s / s[0], "o-", color=color(name), label=name)
    ax.set_xlabel("index i")
    ax.set_ylabel("σ_i / σ_1")
    ax.set_title("singular values of conv1's kernel (9 × 64)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    for r, name in enumerate(names):
        vectors = np.asarray(results[name][0]["first_layer_svd"]["singular_vectors"])
        for c in range(9):
            sub = fig.add_subplot(grid[r, c + 1])
            sub.imshow(vectors[c], cmap="RdBu_r", vmin=-1, vmax=1)
            sub.set_xticks([])
            sub.set_yticks([])
            if c == 0:
                sub.set_ylabel(name, fontsize=8)
            if r == 0:
                sub.set_title(f"u{c + 1}", fontsize=8)
    fig.suptitle("First-layer SVD, first seed: singular values and left singular vectors "
                 "(3×3 patches)", fontsize=10)
    experiment.save_figure(fig, path)


def plot_accuracy(path, results):
    plt = experiment.pyplot()
    panels = [("phase I, MNIST (A)", ["Ort_A", "Std_A", "RR3_A"]),
              ("phase II, MNIST again (AA)", ["Ort_AA", "Std_AA", "RR3_AA"]),
              ("phase II, motion-blurred MNIST (AB) and Std_B",
               ["Ort_AB", "Std_AB", "RR3_AB", "Std_B"])]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), constrained_layout=True)
    for ax, (title, names) in zip(axes, panels):
        for name in names:
            for i, run in enumerate(results[name]):
                epochs, acc = zip(*run["curve"])
                ax.plot(epochs, acc, "o-", color=color(name), ms=3, alpha=0.85,
                        label=name if i == 0 else None)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    experiment.save_figure(fig, path)


def main(argv):
    del argv
    scale = experiment.resolve_preset(PRESETS[FLAGS.preset], FLAGS)
    train_images, test_images = scale["train_images"], scale["test_images"]
    epochs = {"a": scale["epochs_a"], "aa": scale["epochs_aa"], "ab": scale["epochs_ab"]}
    seeds = scale["seeds"]
    for flag, value in (("train_images", train_images), ("test_images", test_images),
                        *((f"epochs_{k}", v) for k, v in epochs.items())):
        if value < 1:
            raise app.UsageError(f"--{flag} must be >= 1, got {value}.")
    settings = {
        "train_images": train_images, "test_images": test_images, "epochs": epochs,
        "batch_size": FLAGS.batch_size, "learning_rate_a": FLAGS.learning_rate_a,
        "learning_rate_b": FLAGS.learning_rate_b, "racecar_weight": FLAGS.racecar_weight,
        "srip_beta": FLAGS.srip_beta, "result_format": 2,
    }
    print(f"racecar MNIST study: {train_images} training images per task, epochs "
          f"A {epochs['a']} / AA {epochs['aa']} / AB and Std_B {epochs['ab']}, seeds {seeds} "
          f"-> {FLAGS.out}", flush=True)
    start = time.time()
    tasks = load_tasks(train_images, test_images)
    cache = experiment.RunCache(FLAGS.out, settings)
    missing = []
    if FLAGS.report_only:
        results, seeds, missing = resumable.finished_seeds(cache, seeds, TABLE_3 + TABLE_4)
        if not seeds:
            raise app.UsageError(f"--report_only: no seed of this study has finished under "
                                 f"{FLAGS.out}/runs")
    else:
        results = run_study(seeds, tasks, epochs, cache, os.path.join(FLAGS.out, "images"))

    summary = {name: experiment.accuracy_summary(runs, PAPER[name])
               for name, runs in results.items()}
    per_epoch = {name: float(np.median([r["seconds_per_epoch"] for r in results[name]]))
                 for name in PHASE_ONE}
    for name, runs in results.items():
        summary[name]["late_gain"] = [late_gain(r) for r in runs]
    for name in PHASE_ONE:
        summary[name]["seconds_per_epoch"] = [r["seconds_per_epoch"] for r in results[name]]
        summary[name]["reconstruction_mse"] = [r["reconstruction_mse"] for r in results[name]]
        summary[name]["first_layer_singular_values"] = [
            r["first_layer_svd"]["singular_values"] for r in results[name]]
    slowdown = per_epoch["RR3_A"] / per_epoch["Std_A"]
    paper_slowdown = PAPER_SECONDS_PER_EPOCH["RR3_A"] / PAPER_SECONDS_PER_EPOCH["Std_A"]
    out = {
        **experiment.environment(),
        "task": "A: MNIST; B: motion-blurred MNIST (n-MNIST variant regenerated from MNIST, "
                "see keras_reversible.data.motion_blur); test accuracy on the first "
                f"{test_images} test images",
        "scale": {"preset": FLAGS.preset, "train_images": train_images,
                  "test_images": test_images, "epochs": epochs},
        "seeds": seeds,
        "complete": not missing, "missing_runs": missing,
        "settings": settings,
        "results": summary,
        "seconds_per_epoch_median": per_epoch,
        "rr3_over_std_seconds_per_epoch": slowdown,
        "paper_rr3_over_std_seconds_per_epoch": paper_slowdown,
        "wall_seconds": time.time() - start,
    }
    reference = as_float(tasks["A"][1][0][:8])[..., 0]
    plot_regenerated_inputs(os.path.join(FLAGS.out, "regenerated_inputs.png"), reference, results)
    plot_first_layer_svd(os.path.join(FLAGS.out, "first_layer_svd.png"), results)
    plot_accuracy(os.path.join(FLAGS.out, "accuracy.png"), results)
    experiment.write_results(os.path.join(FLAGS.out, "results.json"), out)

    print("\n" + experiment.accuracy_table(
        "Table 3 layout (MNIST; phase I and phase II AA): test accuracy",
        TABLE_3, summary, seeds, digits=4))
    print("\n" + experiment.accuracy_table(
        "Table 4 layout (transfer to motion-blurred MNIST): test accuracy",
        TABLE_4, summary, seeds, digits=4))
    print("\n  test accuracy gained over the last third of the epochs (mean over seeds): "
          + ", ".join(f"{name} {np.mean(summary[name]['late_gain']):+.4f}" for name in summary))
    print("\n  phase I   seconds/epoch (median)   MSE of I'")
    for name in PHASE_ONE:
        print(f"  {name:<8}  {per_epoch[name]:>10.1f}             "
              f"{np.mean(summary[name]['reconstruction_mse']):.4g}")
    print(f"  RR3_A / Std_A seconds per epoch: {slowdown:.2f} (paper, GPU: {paper_slowdown:.2f})")
    print(f"\nwrote {os.path.abspath(FLAGS.out)}/results.json, regenerated_inputs.png, "
          f"first_layer_svd.png, accuracy.png ({time.time() - start:.0f}s)")


if __name__ == "__main__":
    app.run(main)
