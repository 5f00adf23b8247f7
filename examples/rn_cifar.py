r"""RN table 2: CIFAR classification, standard vs reversible (RN) vs RN + RNL.

Trains the networks of RN table 2 (the baseline NN of RN table 1, VGG-19,
ResNet-18, DenseNet-40 with k = 12) in three variants each:

* ``std``: the task loss only (the table's plain rows);
* ``rn``: plus the RN reconstruction loss (RN eq. 6–7: the reverse pass from
  the softmax output ``o`` back to the input, mean squared error, weight 1);
* ``rnl``: plus RNL latent feature generation (RN eq. 8, algorithm 1).

RN table 2 has one "Reversible" row per network; the paper's algorithm 1
includes both the reconstruction and the latent generation, its text does
not say which its table used, so its number stands beside both of ours.

Training follows RN §3.1: SGD, learning rate 0.1 divided by 10 after 20, 40
and 60 epochs, momentum 0.9, weight decay 1e-4 (the paper's "learning rate
decay of 0.0001", read as PyTorch's SGD ``weight_decay``; Keras applies it
decoupled, scaled by the learning rate), batch 128 for training and 100 for
testing, images divided by the channel means. Columns: ``C10`` (no
augmentation) and ``C10+`` (random crop after 4-pixel padding, horizontal
flip). The paper gives no epoch count; ``--preset=full`` trains 80.

It writes, under ``--out``:

* ``results.json``: test error (%) per network, variant, column and seed,
  the reconstruction error of ``x̄``, train time per step, RN table 2's
  numbers beside ours, the command, seeds, epochs, scale and library
  versions;
* ``reconstructions.png``: test images and their reconstructions ``x̄``
  (the reverse pass from ``o``) for every variant (RN fig. 2);
* ``errors.png``: our test errors beside the paper's.

Finished runs are cached under ``<out>/runs/`` (results and the trained
weights): a killed study continues from its last finished model.

Usage:

    python examples/rn_cifar.py --out=runs/rn_cifar               # CPU scale
    python examples/rn_cifar.py --preset=full --dataset=cifar100  # the paper's setting (tfds)
    python examples/rn_cifar.py --preset=tiny --out=/tmp/rn       # seconds, for tests
"""

import os
import time

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import zoo  # noqa: E402
from keras_reversible import data  # noqa: E402
from common import experiment  # noqa: E402

MODELS = ("rn_baseline", "reversible_vgg19", "reversible_resnet18", "reversible_densenet40")
VARIANTS = ("std", "rn", "rnl")
COLUMNS = {"plain": False, "aug": True}  # column -> crop + flip augmentation
PRESETS = {
    # name: models, columns, train images, test images, epochs, seeds, source, learning rate
    "cpu": (["rn_baseline"], ["plain"], 3000, 2000, 3, [0], "local", 0.01),
    "full": (list(MODELS), ["plain", "aug"], None, None, 80, list(range(10)), "tfds", 0.1),
    "tiny": (["rn_baseline"], ["plain"], 256, 200, 1, [0], "local", 0.01),
}
# RN table 2, error (%): (C10, C10+, C100, C100+); "Reversible" rows under "rn".
PAPER_TABLE2 = {
    "rn_baseline": {"std": (20.18, 17.17, 49.72, 40.16), "rn": (13.62, 9.17, 45.19, 34.61)},
    "reversible_vgg19": {"std": (8.48, 7.82, 43.80, 28.96), "rn": (7.12, 6.94, 37.56, 24.91)},
    "reversible_resnet18": {"std": (7.92, 6.53, 33.41, 23.24), "rn": (6.01, 5.94, 27.72, 20.03)},
    "reversible_densenet40": {"std": (8.01, 6.47, 28.15, 23.24), "rn": (5.84, 5.17, 22.17, 20.94)},
}
PAPER_NAMES = {"rn_baseline": "Baseline-NN", "reversible_vgg19": "VGG-19",
               "reversible_resnet18": "ResNet", "reversible_densenet40": "DenseNet (k = 12)"}

FLAGS = flags.FLAGS
flags.DEFINE_string("out", "runs/rn_cifar", "Output folder.")
flags.DEFINE_enum("preset", "cpu", list(PRESETS), "Scale preset (cpu: the README run).")
flags.DEFINE_list("models", None, f"Networks (overrides the preset), of {list(MODELS)}.")
flags.DEFINE_list("variants", list(VARIANTS), "Variants: std, rn, rnl.")
flags.DEFINE_list("columns", None, "plain (C10) and/or aug (C10+) (overrides the preset).")
flags.DEFINE_enum("dataset", "cifar10", ["cifar10", "cifar100"], "Data set.")
flags.DEFINE_enum("source", None, ["auto", "local", "tfds"],
                  "Where the images come from (overrides the preset; full: tfds).")
flags.DEFINE_integer("train_images", None, "Training images (overrides the preset; all: 0).")
flags.DEFINE_integer("test_images", None, "Test images (overrides the preset; all: 0).")
flags.DEFINE_integer("epochs", None, "Epochs (overrides the preset).")
flags.DEFINE_list("seeds", None, "Seeds (overrides the preset; the paper: 10 runs).")
flags.DEFINE_integer("batch_size", 128, "Training batch size (RN §3.1: 128).")
flags.DEFINE_integer("test_batch_size", 100, "Test batch size (RN §3.1: 100).")
flags.DEFINE_float("learning_rate", None,
                   "Initial SGD learning rate (overrides the preset; RN §3.1 and full: 0.1; "
                   "cpu: 0.01, as the baseline without BN stays at chance for the few "
                   "steps of the CPU scale at 0.1).")
flags.DEFINE_float("momentum", 0.9, "SGD momentum (RN §3.1: 0.9).")
flags.DEFINE_float("weight_decay", 1e-4, "Weight decay (RN §3.1: 1e-4).")
flags.DEFINE_list("lr_steps", ["20", "40", "60"], "Epochs after which the rate is divided by 10.")
flags.DEFINE_float("rn_weight", 1.0, "Weight of the RN reconstruction loss (RN eq. 7: 1).")
flags.DEFINE_float("latent_weight", 1.0, "Weight of the RNL latent loss (alg. 1: 1).")
flags.DEFINE_integer("latent_entries", 1, "Entries of o raised by tr(o), per sample.")
flags.DEFINE_float("latent_closeness", 0.9, "tr(o) sets them to closeness · max(o).")
flags.DEFINE_float("clipnorm", None,
                   "Clip the global gradient norm to this (RN gives none). DenseNet-40's RN "
                   "loss diverges without it at lr 0.01: see the README.")
flags.DEFINE_integer("calibration_batches", 8,
                     "Training batches whose reverse BN statistics every variant is "
                     "calibrated on before testing (networks without BN ignore it).")


def scale():
    """The preset with the flags' overrides, as a dict."""
    models, columns, n_train, n_test, epochs, seeds, source, lr = PRESETS[FLAGS.preset]
    pick = lambda flag, default: default if flag is None else flag  # noqa: E731
    n_train = pick(FLAGS.train_images, n_train)
    n_test = pick(FLAGS.test_images, n_test)
    return {
        "models": pick(FLAGS.models, models), "columns": pick(FLAGS.columns, columns),
        "train_images": n_train or None, "test_images": n_test or None,
        "epochs": pick(FLAGS.epochs, epochs),
        "seeds": [int(s) for s in FLAGS.seeds] if FLAGS.seeds else seeds,
        "source": pick(FLAGS.source, source),
        "learning_rate": pick(FLAGS.learning_rate, lr),
    }


def num_classes():
    return 100 if FLAGS.dataset == "cifar100" else 10


def build(name, variant):
    """A zoo network with RN's reversal settings for ``variant``."""
    if name not in MODELS or variant not in VARIANTS:
        raise ValueError(f"unknown network {name!r} or variant {variant!r}; "
                         f"networks {MODELS}, variants {VARIANTS}")
    settings = dict(depth=0 if variant == "std" else 1, racecar_weight=FLAGS.rn_weight,
                    reduction="mean", input_range=None, reverse_from=None)
    if variant == "rnl":
        settings["latent_generation"] = {
            "weight": FLAGS.latent_weight, "num_entries": FLAGS.latent_entries,
            "closeness": FLAGS.latent_closeness}
    return zoo.get(name, num_classes=num_classes(), input_shape=(32, 32, 3), **settings)


def compile_rn(model, steps_per_epoch, learning_rate):
    """RN §3.1's optimiser: SGD with momentum, weight decay, step schedule."""
    boundaries = [int(e) * steps_per_epoch for e in FLAGS.lr_steps]
    values = [learning_rate / 10 ** i for i in range(len(boundaries) + 1)]
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    model.compile(
        keras.optimizers.SGD(schedule, momentum=FLAGS.momentum, weight_decay=FLAGS.weight_decay,
                             global_clipnorm=FLAGS.clipnorm),
        keras.losses.SparseCategoricalCrossentropy(),  # the zoo heads end in softmax
        metrics=["accuracy"],
    )


def datasets(sc, augment, seed):
    common = dict(name=FLAGS.dataset, source=sc["source"])
    train = data.cifar_dataset(split="train", batch_size=FLAGS.batch_size, limit=sc["train_images"],
                               augment=augment, seed=seed, **common)
    test = data.cifar_dataset(split="test", batch_size=FLAGS.test_batch_size,
                              limit=sc["test_images"], **common)
    return train, test


def gradient_norms(model, batch):
    """Global norms of the task and RN losses' gradients on ``batch``, in
    training mode, leaving every weight and statistic as it was."""
    import tensorflow as tf

    saved = [v.numpy() for v in model.variables]
    x, y = batch
    with tf.GradientTape(persistent=True) as tape:
        y_pred, rn = model.call_with_racecar_loss(x, training=True)
        task = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, y_pred))
    norms = {}
    for term, loss in (("task", task), ("rn", rn)):
        grads = [g for g in tape.gradient(loss, model.trainable_variables) if g is not None]
        norms[term] = float(tf.linalg.global_norm(grads)) if grads else 0.0
    for v, value in zip(model.variables, saved):
        v.assign(value)
    return norms


def train_one(name, variant, column, seed, sc, cache, key):
    """Trains one network; returns its results and saves its weights in the cache."""
    keras.utils.set_random_seed(seed)
    train, test = datasets(sc, COLUMNS[column], seed)
    steps = int(train.cardinality())
    model = build(name, variant)
    compile_rn(model, steps, sc["learning_rate"])
    # On the first test batch: a second pass over `train` would reshuffle it.
    norms = gradient_norms(model, next(iter(test)))
    start = time.time()
    history = model.fit(train, epochs=sc["epochs"], verbose=0, callbacks=[
        experiment.EpochProgress(f"{name} {variant} {column} seed {seed}", 1, sc["epochs"]),
        keras.callbacks.TerminateOnNaN()])
    diverged = not np.isfinite(model.get_metrics_result()["loss"])
    if diverged:
        print(f"  {name} {variant} {column} seed {seed}: the loss diverged to NaN; "
              "training stopped (try --clipnorm or a smaller --rn_weight)", flush=True)
    seconds = time.time() - start
    # The same reverse BN statistics for every variant (std never ran the reverse pass).
    model.calibrate_reverse_statistics(train.take(FLAGS.calibration_batches))
    experiment.save_model(model, cache.model_path(key))
    ev = model.evaluate(test, verbose=0, return_dict=True)
    x_test = np.concatenate([x for x, _ in test.take(2)])
    rec = model.reconstruct(x_test, batch_size=FLAGS.test_batch_size)
    return {
        "test_error_percent": 100.0 * (1.0 - ev["accuracy"]),
        "test_loss": {k: v for k, v in ev.items() if k != "accuracy"},
        "train_loss_last_epoch": {k: v[-1] for k, v in history.history.items()},
        "reconstruction_mse": float(np.mean((rec - x_test) ** 2)),
        "diverged": bool(diverged),
        "gradient_norm_at_init": norms,
        "seconds": seconds,
        "seconds_per_step": seconds / (steps * sc["epochs"]),
        "steps": steps * sc["epochs"],
        "reconstruction_examples": np.round(rec[:6], 3),
        "parameters": int(keras.Model(model.inputs, model.outputs).count_params()),
    }


def run_study(sc, models, variants, columns):
    """Every (network, variant, column, seed) run, cached; returns them nested."""
    settings = {k: v for k, v in sc.items() if k not in ("models", "columns", "seeds")}
    settings.update(
        dataset=FLAGS.dataset, batch_size=FLAGS.batch_size,
        momentum=FLAGS.momentum, weight_decay=FLAGS.weight_decay, lr_steps=FLAGS.lr_steps,
        rn_weight=FLAGS.rn_weight, latent_weight=FLAGS.latent_weight,
        latent_entries=FLAGS.latent_entries, latent_closeness=FLAGS.latent_closeness,
        calibration_batches=FLAGS.calibration_batches, clipnorm=FLAGS.clipnorm,
        result_format=3)
    cache = experiment.RunCache(FLAGS.out, settings)
    results = {}
    for seed in sc["seeds"]:
        for name in models:
            for column in columns:
                for variant in variants:
                    key = f"{name}-{variant}-{column}-seed{seed}"
                    run = cache.get(key)
                    if run is None:
                        run = train_one(name, variant, column, seed, sc, cache, key)
                        cache.put(key, run)
                    else:
                        print(f"  {key}: cached")
                    print(f"  {key}: test error {run['test_error_percent']:.2f} %, "
                          f"MSE of x̄ {run['reconstruction_mse']:.3f}"
                          f"{' (diverged)' if run.get('diverged') else ''}, "
                          f"{run['seconds_per_step']:.2f} s/step", flush=True)
                    results.setdefault(name, {}).setdefault(column, {}).setdefault(
                        variant, []).append(run)
    return results, cache


def paper_error(name, variant, column):
    row = PAPER_TABLE2[name]["std" if variant == "std" else "rn"]
    index = (0 if FLAGS.dataset == "cifar10" else 2) + (column == "aug")
    return row[index]



def _show(x):
    """Channel-mean-normalised images back to [0, 1] for display."""
    return np.clip(np.asarray(x) * np.array(data.CHANNEL_MEANS[FLAGS.dataset]), 0, 1)


def plot_reconstructions(path, x_test, results):
    """One row per (network, column, variant): x̄ of six test images; inputs on top."""
    plt = experiment.pyplot()
    rows = [("input x", x_test[:6])] + [
        (f"{name} {column} {variant}: x̄", np.asarray(runs[0]["reconstruction_examples"]))
        for name, cols in results.items() for column, vs in cols.items()
        for variant, runs in vs.items()]
    fig, axes = plt.subplots(len(rows), 6, figsize=(7.2, 1.25 * len(rows)), squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(6):
            ax = axes[r, c]
            ax.imshow(_show(images[c]), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle("RN reconstructions x̄ = reverse pass from the softmax output o (test images)",
                 fontsize=9)
    experiment.save_figure(fig, path, dpi=80, bbox_inches="tight")


def plot_errors(path, summary):
    plt = experiment.pyplot()
    labels, ours, paper = [], [], []
    for name, cols in summary.items():
        for column, vs in cols.items():
            for variant, s in vs.items():
                labels.append(f"{name.replace('reversible_', '')}\n{column} {variant}")
                ours.append(s["test_error_percent_mean"])
                paper.append(s["paper_error_percent"])
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(labels)), 3.8))
    pos = np.arange(len(labels))
    ax.bar(pos - 0.2, ours, 0.4, label="ours (this scale)", color="tab:blue")
    ax.bar(pos + 0.2, paper, 0.4, label="RN table 2", color="tab:gray")
    ax.set_xticks(pos, labels, fontsize=7)
    ax.set_ylabel("test error (%)")
    ax.set_title(f"RN table 2, {FLAGS.dataset}: test error", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    experiment.save_figure(fig, path, dpi=100, bbox_inches="tight")


def main(argv):
    del argv
    sc = scale()
    for name in sc["models"]:
        if name not in MODELS:
            raise app.UsageError(f"--models: unknown network {name!r}; known {list(MODELS)}")
    for column in sc["columns"]:
        if column not in COLUMNS:
            raise app.UsageError(f"--columns: unknown column {column!r}; known {list(COLUMNS)}")
    for variant in FLAGS.variants:
        if variant not in VARIANTS:
            raise app.UsageError(f"--variants: unknown {variant!r}; known {list(VARIANTS)}")
    print(f"RN table 2 ({FLAGS.dataset}): {sc['models']} x {FLAGS.variants} x {sc['columns']}, "
          f"{sc['train_images'] or 'all'} train / {sc['test_images'] or 'all'} test images, "
          f"{sc['epochs']} epochs, seeds {sc['seeds']} -> {FLAGS.out}")
    results, _ = run_study(sc, sc["models"], FLAGS.variants, sc["columns"])

    summary = {}
    for name, cols in results.items():
        for column, vs in cols.items():
            for variant, runs in vs.items():
                err = [r["test_error_percent"] for r in runs]
                summary.setdefault(name, {}).setdefault(column, {})[variant] = {
                    "test_error_percent": err,
                    "test_error_percent_mean": float(np.mean(err)),
                    "test_error_percent_std": float(np.std(err)),
                    "paper_error_percent": paper_error(name, variant, column),
                    "reconstruction_mse": [r["reconstruction_mse"] for r in runs],
                    "diverged": [r["diverged"] for r in runs],
                    "gradient_norm_at_init": [r["gradient_norm_at_init"] for r in runs],
                    "seconds_per_step": [r["seconds_per_step"] for r in runs],
                    "seconds": [r["seconds"] for r in runs],
                    "parameters": runs[0]["parameters"],
                }
    out = {
        **experiment.environment(),
        "task": f"RN table 2, {FLAGS.dataset}: error (%) of std / RN / RN + RNL",
        "dataset": FLAGS.dataset,
        "train_images": sc["train_images"], "test_images": sc["test_images"],
        "source": sc["source"],
        "epochs": sc["epochs"],
        "seeds": sc["seeds"],
        "learning_rate": sc["learning_rate"],
        "settings": {k: FLAGS[k].value for k in (
            "batch_size", "test_batch_size", "momentum", "weight_decay",
            "lr_steps", "rn_weight", "latent_weight", "latent_entries", "latent_closeness",
            "clipnorm", "calibration_batches")},
        "results": summary,
    }
    _, test = datasets(sc, False, 0)
    x_test = next(iter(test))[0].numpy()
    plot_reconstructions(os.path.join(FLAGS.out, "reconstructions.png"), x_test, results)
    plot_errors(os.path.join(FLAGS.out, "errors.png"), summary)
    experiment.write_results(os.path.join(FLAGS.out, "results.json"), out)

    print(f"\n  {'network':<22} {'column':<6} {'variant':<8} error % (ours)   paper   MSE of x̄")
    for name, cols in summary.items():
        for column, vs in cols.items():
            for variant, s in vs.items():
                print(f"  {name:<22} {column:<6} {variant:<8} "
                      f"{s['test_error_percent_mean']:6.2f} ± {s['test_error_percent_std']:.2f}"
                      f"    {s['paper_error_percent']:6.2f}   {np.mean(s['reconstruction_mse']):.3f}")
    print(f"\nwrote {os.path.abspath(FLAGS.out)}/results.json, reconstructions.png, errors.png")


if __name__ == "__main__":
    app.run(main)
