r"""Racecar §5.2 / appendix A.3: CIFAR classification and transfer (table 5).

Trains the CIFAR VGG of racecar table 11 (13 convolutions with BN, 40 M
parameters) on task A as Std_A (no reverse pass) and RR¹³_A (racecar loss on
all 13 convolution inputs, λ = 1e-7 with the official ``l2_loss``, the
reverse pass from ``I_r`` = block 13), then phase II with the task loss only
(racecar §3: "in phase II, all models are only trained with the forward
structure and original loss"):

* Std_AA, RR¹³_AA: the phase-I networks trained further on task A;
* Std_AB, RR¹³_AB: the phase-I networks trained on task B;
* Std_B: the same network trained on B from scratch.

Appendix A.3: "all layers except the last fully connected layer ... are
reused" in phase II; read here as: phase II keeps every layer but ``fc16``,
which is re-initialised (for AA too) with as many outputs as the task has
classes.

Table 12's settings are the flags' defaults: batch 200, learning rate 0.1,
0.01 after 80 epochs, 0.001 after 120, 180 epochs for A and AA, 50 for AB and
B. Table 12 names no optimiser; SGD with momentum 0.9 here (``--momentum``).
Images in [0, 1] (the reverse pass ends in ``relu``), no augmentation.
Tasks: ``--preset=full`` is the paper's (A: CIFAR-10, B: CIFAR-100, both
through tensorflow-datasets); the CPU preset splits the local CIFAR-10 batch
(A: classes 0–4, airplane … deer; B: classes 5–9, dog … truck), because only
486 CIFAR-100 training images are local.

It writes, under ``--out``:

* ``results.json``: test accuracy of the seven models (table 5 layout) per
  seed, the paper's table-5 means beside ours, phase-I reconstruction errors
  ``‖L'_m − L_m‖/‖L_m‖`` of the 13 constrained points, times, the command,
  seeds, epochs, scale and library versions;
* ``accuracy.png``: our accuracies beside table 5's (racecar fig. 7);
* ``reconstructions.png``: task-A test images and the regenerated inputs
  ``I'`` of Std_A and RR¹³_A, and the per-layer errors (racecar fig. 5).

Finished runs (results and phase-I weights) are cached under
``<out>/runs/``: a killed study continues from its last finished model.

Usage:

    python examples/racecar_cifar.py --out=runs/racecar_cifar   # CPU scale
    python examples/racecar_cifar.py --preset=full              # table 12 (tfds)
    python examples/racecar_cifar.py --preset=tiny --out=/tmp/rc   # seconds, for tests
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

MODELS = ("Std_A", "RR13_A", "Std_AA", "RR13_AA", "Std_AB", "RR13_AB", "Std_B")
# Racecar table 5 (5 runs): mean, std of the test accuracy.
PAPER_TABLE5 = {
    "Std_A": (0.806, 0.0387), "RR13_A": (0.664, 0.0945), "Std_AA": (0.805, 0.0340),
    "RR13_AA": (0.856, 0.0130), "Std_AB": (0.183, 0.0141), "RR13_AB": (0.276, 0.0138),
    "Std_B": (0.253, 0.0123),
}
TASKS = {
    # preset: (A dataset, A classes, B dataset, B classes, source); None = all classes
    "cpu": ("cifar10", list(range(5)), "cifar10", list(range(5, 10)), "local"),
    "full": ("cifar10", None, "cifar100", None, "tfds"),
    "tiny": ("cifar10", list(range(5)), "cifar10", list(range(5, 10)), "local"),
}
PRESETS = {
    # name: train images per task, test images per task, batch, epochs A / AA / AB / B, seeds
    "cpu": (600, 1000, 100, (3, 2, 2, 2), [0]),
    "full": (None, None, 200, (180, 180, 50, 50), [0, 1, 2, 3, 4]),
    "tiny": (16, 16, 8, (1, 1, 1, 1), [0]),
}

FLAGS = flags.FLAGS
flags.DEFINE_string("out", "runs/racecar_cifar", "Output folder.")
flags.DEFINE_enum("preset", "cpu", list(PRESETS), "Scale preset (cpu: the README run).")
flags.DEFINE_integer("train_images", None, "Training images per task (overrides; all: 0).")
flags.DEFINE_integer("test_images", None, "Test images per task (overrides; all: 0).")
flags.DEFINE_integer("batch_size", None, "Batch size (overrides; table 12: 200).")
flags.DEFINE_list("epochs", None, "Epochs A,AA,AB,B (overrides; table 12: 180,180,50,50).")
flags.DEFINE_list("seeds", None, "Seeds (overrides; table 5 has 5 runs).")
flags.DEFINE_float("learning_rate", 0.1, "Initial learning rate (table 12: 0.1).")
flags.DEFINE_list("lr_steps", ["80", "120"], "Epochs after which the rate is divided by 10 "
                  "(table 12: 80, 120).")
flags.DEFINE_float("momentum", 0.9, "SGD momentum (table 12 names no optimiser).")
flags.DEFINE_float("racecar_weight", 1e-7, "λ of the 13 layers (table 12: 1e-7, l2_loss).")
flags.DEFINE_integer("calibration_batches", 8,
                     "Task-A training batches the reverse BN statistics are calibrated on "
                     "before the inference-mode reconstruction errors.")


def scale():
    n_train, n_test, batch, epochs, seeds = PRESETS[FLAGS.preset]
    a_name, a_classes, b_name, b_classes, source = TASKS[FLAGS.preset]
    pick = lambda flag, default: default if flag is None else flag  # noqa: E731
    epochs = [int(e) for e in FLAGS.epochs] if FLAGS.epochs else list(epochs)
    if len(epochs) != 4:
        raise app.UsageError(f"--epochs needs 4 values (A, AA, AB, B), got {FLAGS.epochs}")
    return {
        "train_images": pick(FLAGS.train_images, n_train) or None,
        "test_images": pick(FLAGS.test_images, n_test) or None,
        "batch_size": pick(FLAGS.batch_size, batch),
        "epochs": dict(zip(("A", "AA", "AB", "B"), epochs)),
        "seeds": [int(s) for s in FLAGS.seeds] if FLAGS.seeds else seeds,
        "task_A": {"dataset": a_name, "classes": a_classes},
        "task_B": {"dataset": b_name, "classes": b_classes},
        "source": source,
    }


def task_data(sc, task, seed):
    """(train, test, number of classes) of task ``"A"`` or ``"B"``."""
    t = sc[f"task_{task}"]
    common = dict(name=t["dataset"], source=sc["source"], classes=t["classes"],
                  batch_size=sc["batch_size"], normalization="unit", augment=False)
    train = data.cifar_dataset(split="train", limit=sc["train_images"], seed=seed, **common)
    test = data.cifar_dataset(split="test", limit=sc["test_images"], shuffle=False, **common)
    n = len(t["classes"]) if t["classes"] else data.cifar.NUM_CLASSES[(t["dataset"], "fine")]
    return train, test, n


def compile_table12(model, steps_per_epoch, logits=True):
    boundaries = [int(e) * steps_per_epoch for e in FLAGS.lr_steps]
    values = [FLAGS.learning_rate / 10 ** i for i in range(len(boundaries) + 1)]
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    model.compile(keras.optimizers.SGD(schedule, momentum=FLAGS.momentum),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=logits),
                  metrics=["accuracy"])


def fit(model, name, seed, train, test, epochs):
    """Trains and evaluates; returns the run's result dict."""
    compile_table12(model, int(train.cardinality()))
    start = time.time()
    model.fit(train, epochs=epochs, verbose=0, callbacks=[
        experiment.EpochProgress(f"{name} seed {seed}", 1, epochs)])
    seconds = time.time() - start
    ev = model.evaluate(test, verbose=0, return_dict=True)
    return {"test_accuracy": float(ev["accuracy"]), "seconds": seconds,
            "seconds_per_epoch": seconds / epochs}


def phase_two(phase_one, num_classes, seed):
    """The phase-I network without reverse pass, ``fc16`` re-initialised for the task."""
    plain = phase_one.to_standard()
    features = plain.get_layer("relu15").output
    init = keras.initializers.GlorotUniform(seed=seed)  # same head fresh or resumed
    outputs = keras.layers.Dense(num_classes, kernel_initializer=init, name="fc16")(features)
    return keras.Model(plain.inputs, outputs, name="racecar_cifar_vgg_phase2")


def run_phase_one(name, seed, sc, cache):
    """(a function returning the trained model, the run's results)."""
    key = f"{name}-seed{seed}"
    weights = cache.model_path(key).replace(".keras", ".weights.h5")
    train, test, n = task_data(sc, "A", seed)

    def build():
        keras.utils.set_random_seed(seed)
        return zoo.racecar_cifar_vgg(num_classes=n, depth=13 if name == "RR13_A" else 0,
                                     racecar_weight=FLAGS.racecar_weight)

    def load():
        model = build()
        model.load_weights(weights)
        return model

    run = cache.get(key)
    if run is not None and os.path.exists(weights):
        print(f"  {key}: cached")
        return load, run
    model = build()
    run = fit(model, name, seed, train, test, sc["epochs"]["A"])
    experiment.save_model(model, weights, weights_only=True)
    x = np.concatenate([x for x, _ in test.take(max(1, 64 // sc["batch_size"]))])[:64]
    # Reverse BN with batch statistics (as the racecar loss sees the reverse
    # pass) and with moving ones, calibrated alike for Std (which never ran
    # the reverse pass) and RR; training mode moves the moving averages, so
    # the saved weights are restored afterwards.
    model.calibrate_reverse_statistics(train.take(FLAGS.calibration_batches))
    for suffix, training in (("", True), ("_inference", False)):
        pairs = model.reverse_activations(x, depth=model.num_constrained, training=training)
        run["layer_relative_error" + suffix] = [
            float(np.linalg.norm(r - f) / np.linalg.norm(f)) for f, r in pairs]
        run["reconstruction_mse" + suffix] = float(np.mean((pairs[0][1] - x) ** 2))
        if training:
            run["reconstruction_examples"] = np.round(pairs[0][1][:6], 3)
    model.load_weights(weights)
    cache.put(key, run)
    return lambda: model, run


def plot_accuracy(path, summary, sc):
    plt = experiment.pyplot()

    names = list(summary)
    pos = np.arange(len(names))
    ours = [summary[n]["test_accuracy_mean"] for n in names]
    paper = [PAPER_TABLE5[n][0] for n in names]
    fig, ax = plt.subplots(figsize=(8, 3.8))
    ax.bar(pos - 0.2, ours, 0.4, label="ours (this scale)", color="tab:green")
    ax.bar(pos + 0.2, paper, 0.4, yerr=[PAPER_TABLE5[n][1] for n in names],
           label="racecar table 5 (5 runs)", color="tab:gray")
    chance = {t: 1 / (len(sc[f"task_{t}"]["classes"] or []) or data.cifar.NUM_CLASSES[
        (sc[f"task_{t}"]["dataset"], "fine")]) for t in ("A", "B")}
    ax.hlines([chance["B" if n.endswith("B") else "A"] for n in names], pos - 0.4, pos,
              colors="k", linestyles="dashed", label="chance (ours)")
    ax.set_xticks(pos, names)
    ax.set_ylabel("test accuracy")
    a, b = sc["task_A"], sc["task_B"]
    ax.set_title(f"task A: {a['dataset']} {a['classes'] or 'all'}, task B: {b['dataset']} "
                 f"{b['classes'] or 'all'}", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    experiment.save_figure(fig, path, dpi=100, bbox_inches="tight")


def plot_reconstructions(path, x, runs):
    plt = experiment.pyplot()

    rows = [("input I", x[:6])] + [
        (f"{name}: I' (MSE {runs[name]['reconstruction_mse']:.3g})",
         np.asarray(runs[name]["reconstruction_examples"])) for name in ("Std_A", "RR13_A")]
    fig = plt.figure(figsize=(11, 3.6))
    grid = fig.add_gridspec(3, 10)
    for r, (label, images) in enumerate(rows):
        for c in range(6):
            ax = fig.add_subplot(grid[r, c])
            ax.imshow(np.clip(images[c], 0, 1), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    ax = fig.add_subplot(grid[:, 7:])
    for name, color in (("Std_A", "tab:orange"), ("RR13_A", "tab:green")):
        for suffix, style, label in (("", "o-", "BN batch stats"),
                                     ("_inference", "x:", "reverse BN moving stats, calibrated")):
            err = runs[name]["layer_relative_error" + suffix]
            ax.plot(np.arange(1, len(err) + 1), err, style, color=color, label=f"{name}, {label}")
    ax.set_yscale("log")
    ax.set_xlabel("constrained point m (L_1 = input)")
    ax.set_title("||L'_m - L_m|| / ||L_m||, 64 task-A test images", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.suptitle("racecar CIFAR VGG, phase I: regenerated inputs I' (reverse pass from I_r "
                 "= block 13, reverse BN with batch statistics) and every layer's "
                 "reconstruction", fontsize=9)
    experiment.save_figure(fig, path, dpi=90, bbox_inches="tight")


def main(argv):
    del argv
    sc = scale()
    settings = {**sc, "learning_rate": FLAGS.learning_rate, "lr_steps": FLAGS.lr_steps,
                "momentum": FLAGS.momentum, "racecar_weight": FLAGS.racecar_weight,
                "calibration_batches": FLAGS.calibration_batches, "result_format": 3}
    settings.pop("seeds")
    cache = experiment.RunCache(FLAGS.out, settings)
    print(f"racecar CIFAR: {list(MODELS)}, task A {sc['task_A']}, task B {sc['task_B']}, "
          f"{sc['train_images'] or 'all'} train / {sc['test_images'] or 'all'} test images per "
          f"task, batch {sc['batch_size']}, epochs {sc['epochs']}, seeds {sc['seeds']} -> {FLAGS.out}")
    results = {name: [] for name in MODELS}
    for seed in sc["seeds"]:
        for prefix in ("Std", "RR13"):
            phase_one, run = run_phase_one(f"{prefix}_A", seed, sc, cache)
            results[f"{prefix}_A"].append(run)
            for task in ("A", "B"):
                name, key = f"{prefix}_A{task}", f"{prefix}_A{task}-seed{seed}"
                run = cache.get(key)
                if run is None:
                    train, test, n = task_data(sc, task, seed)
                    keras.utils.set_random_seed(seed)
                    run = fit(phase_two(phase_one(), n, seed), name, seed, train, test,
                              sc["epochs"][f"A{task}"])
                    cache.put(key, run)
                else:
                    print(f"  {key}: cached")
                results[name].append(run)
        key = f"Std_B-seed{seed}"
        run = cache.get(key)
        if run is None:
            train, test, n = task_data(sc, "B", seed)
            keras.utils.set_random_seed(seed)
            model = zoo.racecar_cifar_vgg(num_classes=n, depth=0)
            run = fit(model, "Std_B", seed, train, test, sc["epochs"]["B"])
            cache.put(key, run)
        else:
            print(f"  {key}: cached")
        results["Std_B"].append(run)
        for name in MODELS:
            print(f"  {name}-seed{seed}: test accuracy {results[name][-1]['test_accuracy']:.3f}",
                  flush=True)

    summary = {}
    for name, runs in results.items():
        acc = [r["test_accuracy"] for r in runs]
        summary[name] = {
            "test_accuracy": acc,
            "test_accuracy_mean": float(np.mean(acc)),
            "test_accuracy_std": float(np.std(acc)),
            "paper_table5_mean_std": PAPER_TABLE5[name],
            "seconds_per_epoch": [r["seconds_per_epoch"] for r in runs],
        }
        for suffix in ("", "_inference"):
            if "layer_relative_error" + suffix in runs[0]:
                summary[name]["layer_relative_error_mean" + suffix] = np.mean(
                    [r["layer_relative_error" + suffix] for r in runs], axis=0).tolist()
                summary[name]["reconstruction_mse" + suffix] = [
                    r["reconstruction_mse" + suffix] for r in runs]
    out = {
        **experiment.environment(),
        "task": "racecar §5.2 / A.3, table 5: CIFAR VGG (table 11), phase I on A, phase II on A/B",
        "task_A": sc["task_A"], "task_B": sc["task_B"], "source": sc["source"],
        "train_images_per_task": sc["train_images"], "test_images_per_task": sc["test_images"],
        "batch_size": sc["batch_size"],
        "epochs": sc["epochs"],
        "seeds": sc["seeds"],
        "settings": {k: settings[k] for k in ("learning_rate", "lr_steps", "momentum",
                                              "racecar_weight")},
        "results": summary,
    }
    _, test, _ = task_data(sc, "A", sc["seeds"][0])
    x = np.concatenate([x for x, _ in test.take(max(1, 6 // sc["batch_size"] + 1))])
    first = {name: results[name][0] for name in ("Std_A", "RR13_A")}
    plot_reconstructions(os.path.join(FLAGS.out, "reconstructions.png"), x, first)
    plot_accuracy(os.path.join(FLAGS.out, "accuracy.png"), summary, sc)
    experiment.write_results(os.path.join(FLAGS.out, "results.json"), out)

    print("\n  model     test accuracy (ours)   paper table 5")
    for name, s in summary.items():
        print(f"  {name:<9} {s['test_accuracy_mean']:.3f} ± {s['test_accuracy_std']:.3f}"
              "          {:.3f} ± {:.3f}".format(*s["paper_table5_mean_std"]))
    print(f"\nwrote {os.path.abspath(FLAGS.out)}/results.json, accuracy.png, reconstructions.png")


if __name__ == "__main__":
    app.run(main)
