r"""RN table 2 at CPU scale: CIFAR ResNet-20 on full CIFAR-10, std vs RN vs RN + RNL.

Three variants of ``zoo.reversible_cifar_resnet`` (He et al. 2016, §4.2;
option-A shortcuts) trained with the same protocol:

* ``std``: the task loss only (``reverse_depth=0``);
* ``rn``: plus the RN reconstruction loss (RN eq. 6–7): the reverse pass
  from the softmax output ``o`` back to the input, only the input compared
  (depth 1), mean squared error, weight ``--racecar_weight`` (RN: 1);
* ``rnl``: ``rn`` plus RNL latent feature generation (RN eq. 8,
  algorithm 1).

Protocol (C10+, RN table 2's augmented column): random 32×32 crop after
4-pixel zero padding and horizontal flip (the loader's ``augment=True``),
images divided by the channel means (RN §3.1); SGD with momentum 0.9 and
weight decay, batch 128, learning rate 0.1 with a cosine schedule (or He
et al.'s step schedule, ÷10 at 50 % and 75 % of the run) over the whole run
and a one-epoch linear warm-up. Weight decay: He et al. use an L2 penalty
of 1e-4 added to the gradient (coupled, amplified ×1/(1 − momentum) = 10 by
the momentum); Keras' SGD applies ``weight_decay`` decoupled, scaled by the
learning rate, so ``--weight_decay=1e-3`` is the same per-step shrinkage.

Presets (flags override them):

* ``cpu``: all 50,000 training and 10,000 test images, 40 epochs
  (15,640 steps), seeds 0 and 1. He et al. reach 91.25 % with ResNet-20
  after 64k steps (≈ 164 epochs) of a step schedule; a cosine schedule over
  a quarter of that budget is the usual way to get within 1–2 points of the
  long run, so 40 epochs is chosen to put std at ≥ 88 % (issue 16's bar;
  30 epochs would save a quarter of the time with less margin). Training
  time per run at batch 128 on 2 CPU cores: std ≈ 1.0 h, rn and rnl
  ≈ 1.8 h on an idle machine (0.24 / 0.41 s a step), about 2.6× that when
  the cores are shared (0.63 / 1.03 / 1.07 s a step measured at load 4–6),
  plus ≈ 10–15 s an epoch of testing.
* ``lowdata``: the first 5,000 training images, 100 epochs (3,900 steps),
  seeds 0, 1, 2, test accuracy curve every 5 epochs.
* ``tiny``: 256 training / 200 test images, 2 epochs, batch 64: seconds,
  for tests.

It writes, under ``--out``:

* ``results.json``: per variant the test accuracy per seed, mean ± std
  (sample std over seeds), the difference to std and whether it exceeds the
  seed-to-seed spread, the reconstruction error of ``x̄``, per-run wall
  time and seconds per epoch and per step, the per-epoch history; the
  command, settings and library versions;
* ``accuracy.png``: test accuracy per epoch, every run;
* ``reconstructions.png``: test images and their reconstructions ``x̄``.

Resuming. Every run keeps a ``keras.callbacks.BackupAndRestore`` backup
(weights, optimizer state with its iteration count, hence the position in
the learning-rate schedule, and the epoch) in ``<out>/runs/<run>.backup/``,
written after every epoch, and its per-epoch log in
``<out>/runs/<run>.epochs.json``: a killed study continues from the last
finished epoch of the run it was in (the backup is removed once the run's
result is cached, so a kill during its final test does not retrain it). Finished runs are cached
(``<out>/runs/<run>.json`` and the trained weights ``<run>.weights.h5``)
and not retrained. Changing a setting that shapes the runs (epochs, data,
optimiser, losses) starts them afresh. A resumed run draws its epoch's
crops and order from a seed that includes the epoch, so it does not replay
its first epoch.

Usage (``KERAS_REVERSIBLE_DATA`` names the folder holding ``cifar10/``):

    python examples/rn_cifar_resnet.py --out=runs/rn_cifar_resnet              # full data
    python examples/rn_cifar_resnet.py --preset=lowdata --out=runs/rn_resnet_5k
    python examples/rn_cifar_resnet.py --preset=tiny --out=/tmp/rnr            # seconds
    python examples/rn_cifar_resnet.py --measure_steps=30   # s/step per variant, projection
    python examples/rn_cifar_resnet.py --preset=lowdata --out=runs/rn_resnet_5k --report_only
        # results.json and figures from the runs finished so far (complete: false)
"""

import os
import time

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import zoo  # noqa: E402
from keras_reversible import data  # noqa: E402
from common import experiment, resumable  # noqa: E402

VARIANTS = ("std", "rn", "rnl")
PRESETS = {
    "cpu": dict(epochs=40, seeds=[0, 1], train_images=0, test_images=0, batch_size=128,
                eval_every=1),
    "lowdata": dict(epochs=100, seeds=[0, 1, 2], train_images=5000, test_images=0,
                    batch_size=128, eval_every=5),
    "tiny": dict(epochs=2, seeds=[0], train_images=256, test_images=200, batch_size=64,
                 eval_every=1),
}
# He et al. 2016, table 6 (ResNet-20, C10+, option A, 64k steps): 8.75 % error.
HE_ET_AL_ACCURACY = {20: 91.25, 32: 92.49, 44: 92.83, 56: 93.03, 110: 93.39}
# RN table 2, C10+ error (%), "ResNet" rows (its text: ResNet-18; its size: ResNet-110).
PAPER_TABLE2_C10_PLUS = {"std": 6.53, "rn": 5.94}

FLAGS = flags.FLAGS
flags.DEFINE_string("out", "runs/rn_cifar_resnet", "Output folder (results, figures, run cache).")
flags.DEFINE_enum("preset", "cpu", list(PRESETS), "Scale preset (cpu: full CIFAR-10).")
flags.DEFINE_list("variants", list(VARIANTS), "Variants: std, rn, rnl.")
flags.DEFINE_integer("resnet_depth", 20, "Network depth 6n + 2 (20, 32, 44, 56, 110).")
flags.DEFINE_enum("shortcut", "A", ["A", "B"], "He et al.'s shortcut option (CIFAR: A).")
flags.DEFINE_integer("epochs", None, "Epochs per run (overrides the preset).")
flags.DEFINE_list("seeds", None, "Seeds (overrides the preset).")
flags.DEFINE_integer("train_images", None,
                     "Training images, the first N of the 50,000 (overrides the preset; "
                     "all: 0). The low-data regime: 5000 or 10000.")
flags.DEFINE_integer("test_images", None, "Test images (overrides the preset; all: 0).")
flags.DEFINE_integer("batch_size", None, "Training batch size (overrides the preset; cpu: 128).")
flags.DEFINE_integer("test_batch_size", 100, "Test batch size (RN §3.1: 100).")
flags.DEFINE_integer("eval_every", None,
                     "Test accuracy every N epochs for the curves (overrides the preset); "
                     "the last epoch is always tested.")
flags.DEFINE_boolean("augment", True, "C10+: pad-4 random crop + flip (False: C10).")
flags.DEFINE_enum("source", "local", ["auto", "local", "tfds"], "Where the images come from.")
flags.DEFINE_float("learning_rate", 0.1, "Peak SGD learning rate (He et al.: 0.1).")
flags.DEFINE_enum("schedule", "cosine", ["cosine", "step"],
                  "cosine to 0 over the run, or step: ÷10 at 50 % and 75 % (He et al.).")
flags.DEFINE_float("warmup_epochs", 1.0, "Linear warm-up from 0 to the peak rate, in epochs.")
flags.DEFINE_float("momentum", 0.9, "SGD momentum (He et al.: 0.9).")
flags.DEFINE_float("weight_decay", 1e-3,
                   "Keras' decoupled SGD weight decay (scaled by the rate); 1e-3 is He et "
                   "al.'s coupled 1e-4 with momentum 0.9.")
flags.DEFINE_float("clipnorm", None, "Clip the global gradient norm (none by default).")
flags.DEFINE_float("racecar_weight", 1.0, "Weight λ of the RN reconstruction loss (RN: 1).")
flags.DEFINE_float("latent_weight", 1.0, "Weight of the RNL latent loss (alg. 1: 1).")
flags.DEFINE_integer("latent_entries", 1, "Entries of o raised by tr(o), per sample.")
flags.DEFINE_float("latent_closeness", 0.9, "tr(o) sets them to closeness · max(o).")
flags.DEFINE_integer("calibration_batches", 8,
                     "Training batches the reverse BN statistics of every variant are "
                     "calibrated on before the reconstructions are measured.")
resumable.define_flags("every run finished so far; the others are listed as missing")
flags.DEFINE_integer("measure_steps", None,
                     "Only measure: seconds per training step of each variant over this many "
                     "steps (after 3 warm-up steps), and the projected wall time per run of "
                     "the preset; trains no study.")


def scale():
    """The preset with the flags' overrides."""
    sc = experiment.resolve_preset(PRESETS[FLAGS.preset], FLAGS)
    sc["train_images"] = sc["train_images"] or None
    sc["test_images"] = sc["test_images"] or None
    for key in ("epochs", "batch_size", "eval_every"):
        if sc[key] < 1:
            raise app.UsageError(f"--{key} must be >= 1, got {sc[key]}")
    return sc


def build(variant, seed):
    """ResNet-N with the reversal settings of ``variant``."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    keras.utils.set_random_seed(seed)
    settings = dict(reverse_depth=0 if variant == "std" else 1,
                    racecar_weight=FLAGS.racecar_weight, reduction="mean", input_range=None,
                    reverse_from=None)
    if variant == "rnl":
        settings["latent_generation"] = {
            "weight": FLAGS.latent_weight, "num_entries": FLAGS.latent_entries,
            "closeness": FLAGS.latent_closeness}
    return zoo.reversible_cifar_resnet(depth=FLAGS.resnet_depth, shortcut=FLAGS.shortcut,
                                       num_classes=10, input_shape=(32, 32, 3), **settings)


def learning_rate_schedule(steps_per_epoch, epochs):
    """Linear warm-up, then cosine to 0 (or ÷10 at 50 % and 75 %) by the last step."""
    return resumable.warmup_schedule(FLAGS.learning_rate, steps_per_epoch, epochs,
                                     FLAGS.warmup_epochs, FLAGS.schedule)


def compile_model(model, steps_per_epoch, epochs):
    model.compile(
        keras.optimizers.SGD(learning_rate_schedule(steps_per_epoch, epochs),
                             momentum=FLAGS.momentum, weight_decay=FLAGS.weight_decay,
                             global_clipnorm=FLAGS.clipnorm),
        keras.losses.SparseCategoricalCrossentropy(),  # the zoo head ends in softmax
        metrics=["accuracy"],
    )


def datasets(sc, seed):
    train = data.cifar_dataset("cifar10", "train", batch_size=sc["batch_size"],
                               limit=sc["train_images"], augment=FLAGS.augment, seed=seed,
                               source=FLAGS.source)
    test = data.cifar_dataset("cifar10", "test", batch_size=FLAGS.test_batch_size,
                              limit=sc["test_images"], source=FLAGS.source)
    return train, test


def run_settings(sc):
    """Everything that shapes a run: a change retrains (cache and backups)."""
    return {
        "resnet_depth": FLAGS.resnet_depth, "shortcut": FLAGS.shortcut,
        "epochs": sc["epochs"], "train_images": sc["train_images"],
        "test_images": sc["test_images"], "batch_size": sc["batch_size"],
        "test_batch_size": FLAGS.test_batch_size, "eval_every": sc["eval_every"],
        "augment": FLAGS.augment, "source": FLAGS.source,
        "learning_rate": FLAGS.learning_rate, "schedule": FLAGS.schedule,
        "warmup_epochs": FLAGS.warmup_epochs, "momentum": FLAGS.momentum,
        "weight_decay": FLAGS.weight_decay, "clipnorm": FLAGS.clipnorm,
        "racecar_weight": FLAGS.racecar_weight, "latent_weight": FLAGS.latent_weight,
        "latent_entries": FLAGS.latent_entries, "latent_closeness": FLAGS.latent_closeness,
        "calibration_batches": FLAGS.calibration_batches, "result_format": 1,
    }


def train_one(variant, seed, sc, cache, key, settings):
    """Trains (or resumes) one run; returns its results, saves its weights."""
    start = resumable.start_epoch(cache, key, settings)
    # Epoch e's crops and order come from (seed, e): a resumed run does not replay epoch 1.
    train, test = datasets(sc, seed * 100_003 + start)
    steps = int(train.cardinality())
    model = build(variant, seed)
    compile_model(model, steps, sc["epochs"])
    label = f"{variant} seed {seed}"
    log = resumable.fit(model, train, test, sc["epochs"], cache, key, settings, label=label,
                        start=start, validation_freq=_eval_epochs(sc),
                        stop_after=FLAGS.stop_after_epochs)
    epochs = log["epochs"]
    resumable.stop_if_failed(
        model, epochs, cache, key, label,
        f"Rerun with --clipnorm (now {FLAGS.clipnorm or 'none'}), a smaller --learning_rate "
        f"(now {FLAGS.learning_rate}) or --racecar_weight (now {FLAGS.racecar_weight}).",
        chance=1 / 10)
    model.calibrate_reverse_statistics(train.take(FLAGS.calibration_batches))
    experiment.save_model(model, os.path.join(cache.dir, f"{key}.weights.h5"), weights_only=True)
    ev = model.evaluate(test, verbose=0, return_dict=True)
    x_test = np.concatenate([x for x, _ in test.take(2)])
    rec = model.reconstruct(x_test, batch_size=FLAGS.test_batch_size)
    seconds = float(sum(e["seconds"] for e in epochs.values()))
    train_seconds = float(sum(e["train_seconds"] for e in epochs.values()))
    return {
        "test_accuracy": float(ev["accuracy"]),
        "test_loss": {k: float(v) for k, v in ev.items() if k != "accuracy"},
        "epochs_trained": len(epochs),
        "optimizer_iterations": int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
        "steps_per_epoch": steps,
        "sessions": log["sessions"],
        "history": {str(k): epochs[k] for k in sorted(epochs)},
        "reconstruction_mse": float(np.mean((rec - x_test) ** 2)),
        "reconstruction_examples": np.round(rec[:6], 3),
        "seconds": seconds,
        "seconds_per_epoch": seconds / len(epochs),
        "seconds_per_step": train_seconds / (steps * len(epochs)),
        "parameters": int(keras.Model(model.inputs, model.outputs).count_params()),
    }


def _eval_epochs(sc):
    every, epochs = sc["eval_every"], sc["epochs"]
    return sorted({e for e in range(every, epochs + 1, every)} | {epochs})


def run_study(sc):
    """{variant: [run result per seed]} and the keys of the runs not finished yet."""
    settings = run_settings(sc)
    cache = experiment.RunCache(FLAGS.out, settings)
    results, missing = {}, []
    for seed in sc["seeds"]:
        for variant in FLAGS.variants:
            key = f"resnet{FLAGS.resnet_depth}-{variant}-seed{seed}"
            run = cache.get(key)
            if run is None and FLAGS.report_only:
                print(f"  {key}: not finished yet (--report_only: skipped)", flush=True)
                missing.append(key)
                continue
            if run is None:
                run = train_one(variant, seed, sc, cache, key, settings)
                resumable.finish(cache, key, run)
            else:
                print(f"  {key}: cached", flush=True)
            print(f"  {key}: test accuracy {100 * run['test_accuracy']:.2f} %, "
                  f"MSE of x̄ {run['reconstruction_mse']:.3f}, {run['seconds'] / 60:.1f} min "
                  f"({run['seconds_per_epoch']:.1f} s/epoch, {run['seconds_per_step']:.3f} "
                  f"s/step)", flush=True)
            run["seed"] = seed
            results.setdefault(variant, []).append(run)
    return results, missing


def summarize(results):
    """Mean ± sample std per variant, and each variant's difference to std."""
    summary = {}
    for variant, runs in results.items():
        acc = np.array([100 * r["test_accuracy"] for r in runs])
        summary[variant] = {
            "test_accuracy_percent": acc.tolist(),
            "test_accuracy_percent_mean": float(acc.mean()),
            "test_accuracy_percent_std": float(acc.std(ddof=1)) if len(acc) > 1 else None,
            "seeds": len(acc), "seed_values": [r.get("seed") for r in runs],
            "reconstruction_mse": [r["reconstruction_mse"] for r in runs],
            "seconds_per_run": [r["seconds"] for r in runs],
            "seconds_per_epoch": [r["seconds_per_epoch"] for r in runs],
            "seconds_per_step": [r["seconds_per_step"] for r in runs],
            "sessions": [r["sessions"] for r in runs],
            "parameters": runs[0]["parameters"],
        }
    base = summary.get("std")
    for variant, s in summary.items():
        if variant == "std" or base is None:
            continue
        diff = s["test_accuracy_percent_mean"] - base["test_accuracy_percent_mean"]
        spreads = [x for x in (s["test_accuracy_percent_std"], base["test_accuracy_percent_std"])
                   if x is not None]
        spread = max(spreads) if len(spreads) == 2 else None
        s["difference_to_std_percent"] = diff
        s["seed_spread_percent"] = spread
        # Larger than the seed-to-seed standard deviation of either variant.
        s["difference_exceeds_seed_spread"] = None if spread is None else bool(abs(diff) > spread)
        if spread is not None:
            se = np.sqrt(s["test_accuracy_percent_std"] ** 2 / s["seeds"]
                         + base["test_accuracy_percent_std"] ** 2 / base["seeds"])
            s["welch_t"] = float(diff / se) if se > 0 else None
    return summary



def plot_accuracy(path, results, train_images):
    plt = experiment.pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    colors = {"std": "tab:gray", "rn": "tab:blue", "rnl": "tab:orange"}
    for variant, runs in results.items():
        for i, run in enumerate(runs):
            pts = [(int(e), 100 * h["val_accuracy"]) for e, h in run["history"].items()
                   if "val_accuracy" in h]
            if pts:
                ax.plot(*zip(*pts), color=colors.get(variant), alpha=0.8, marker=".",
                        label=variant if i == 0 else None)
    ax.axhline(HE_ET_AL_ACCURACY.get(FLAGS.resnet_depth, np.nan), color="k", ls=":", lw=1,
               label="He et al. (64k steps)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    images = f"{train_images:,}" if train_images else "all 50,000"
    ax.set_title(f"ResNet-{FLAGS.resnet_depth}, CIFAR-10{'+' if FLAGS.augment else ''} "
                 f"({images} training images): std / RN / RN + RNL; every seed", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    experiment.save_figure(fig, path, dpi=100, bbox_inches="tight")


def plot_reconstructions(path, x_test, results):
    plt = experiment.pyplot()
    rows = [("input x", x_test[:6])] + [
        (f"{variant}: x̄", np.asarray(runs[0]["reconstruction_examples"]))
        for variant, runs in results.items()]
    fig, axes = plt.subplots(len(rows), 6, figsize=(7.2, 1.25 * len(rows)), squeeze=False)
    means = np.array(data.CHANNEL_MEANS["cifar10"])
    for r, (label, images) in enumerate(rows):
        for c in range(6):
            ax = axes[r, c]
            ax.imshow(np.clip(images[c] * means, 0, 1), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle("x̄ = reverse pass from the softmax output o (test images)", fontsize=9)
    experiment.save_figure(fig, path, dpi=80, bbox_inches="tight")


class _BatchTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times = []

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter())


def measure(sc, steps):
    """Seconds per step of each variant, and the projected run time of the preset."""
    warm = 3
    n_images = (warm + steps) * sc["batch_size"]
    train = data.cifar_dataset("cifar10", "train", batch_size=sc["batch_size"], limit=n_images,
                               augment=FLAGS.augment, seed=0, source=FLAGS.source,
                               drop_remainder=True).cache()
    for _ in train:  # fill the cache: the timed steps read from memory
        pass
    full = data.cifar_dataset("cifar10", "train", batch_size=sc["batch_size"],
                              limit=sc["train_images"], source=FLAGS.source)
    steps_per_epoch = int(full.cardinality())
    out = {"batch_size": sc["batch_size"], "steps": steps, "steps_per_epoch": steps_per_epoch,
           "epochs": sc["epochs"], "load_average": list(os.getloadavg()), "variants": {}}
    for variant in FLAGS.variants:
        model = build(variant, 0)
        compile_model(model, steps_per_epoch, sc["epochs"])
        timer = _BatchTimer()
        model.fit(train, epochs=1, verbose=0, callbacks=[timer], shuffle=False)
        dt = np.diff(timer.times[warm - 1:])
        per_step = float(np.mean(dt))
        per_epoch = per_step * steps_per_epoch
        out["variants"][variant] = {
            "seconds_per_step": per_step, "seconds_per_step_median": float(np.median(dt)),
            "projected_seconds_per_epoch": per_epoch,
            "projected_hours_per_run": per_epoch * sc["epochs"] / 3600}
        print(f"  {variant}: {per_step:.3f} s/step (median {np.median(dt):.3f}) over {len(dt)} "
              f"steps of {sc['batch_size']} -> {per_epoch / 60:.1f} min/epoch of "
              f"{steps_per_epoch} steps, {per_epoch * sc['epochs'] / 3600:.2f} h per "
              f"{sc['epochs']}-epoch run (training only)", flush=True)
    out["load_average_after"] = list(os.getloadavg())
    print(f"  load average before {out['load_average']}, after {out['load_average_after']}")
    experiment.write_json(os.path.join(FLAGS.out, "timing.json"),
                          {**experiment.environment(), **out})
    return out


def main(argv):
    del argv
    sc = scale()
    for variant in FLAGS.variants:
        if variant not in VARIANTS:
            raise app.UsageError(f"--variants: unknown {variant!r}; known {list(VARIANTS)}")
    if FLAGS.resnet_depth not in HE_ET_AL_ACCURACY:
        raise app.UsageError(f"--resnet_depth must be one of {sorted(HE_ET_AL_ACCURACY)}, "
                             f"got {FLAGS.resnet_depth}")
    if FLAGS.measure_steps is not None:
        if FLAGS.measure_steps < 2:
            raise app.UsageError(f"--measure_steps must be >= 2, got {FLAGS.measure_steps}")
        measure(sc, FLAGS.measure_steps)
        return
    print(f"RN table 2 at CPU scale: ResNet-{FLAGS.resnet_depth} ({FLAGS.shortcut}), "
          f"{FLAGS.variants}, {sc['train_images'] or 'all'} train / "
          f"{sc['test_images'] or 'all'} test images, {sc['epochs']} epochs, "
          f"seeds {sc['seeds']} -> {FLAGS.out}", flush=True)
    results, missing = run_study(sc)
    if not results:
        raise app.UsageError(f"--report_only: no run of this study has finished under "
                             f"{FLAGS.out}/runs")
    summary = summarize(results)
    out = {
        **experiment.environment(),
        "task": f"RN table 2 at CPU scale: CIFAR-10{'+' if FLAGS.augment else ''}, "
                f"ResNet-{FLAGS.resnet_depth}, test accuracy (%) of std / RN / RN + RNL",
        "preset": FLAGS.preset, "epochs": sc["epochs"], "seeds": sc["seeds"],
        "train_images": sc["train_images"], "test_images": sc["test_images"],
        "settings": run_settings(sc),
        "he_et_al_accuracy_percent": HE_ET_AL_ACCURACY[FLAGS.resnet_depth],
        "rn_table2_c10_plus_error_percent": PAPER_TABLE2_C10_PLUS,
        "complete": not missing, "missing_runs": missing,
        "results": summary,
        "runs": {v: [{k: r[k] for k in ("seed", "test_accuracy", "epochs_trained", "sessions",
                                         "optimizer_iterations", "seconds", "history")}
                     for r in runs] for v, runs in results.items()},
    }
    _, test = datasets(sc, 0)
    x_test = next(iter(test))[0].numpy()
    plot_accuracy(os.path.join(FLAGS.out, "accuracy.png"), results, sc["train_images"])
    plot_reconstructions(os.path.join(FLAGS.out, "reconstructions.png"), x_test, results)
    experiment.write_results(os.path.join(FLAGS.out, "results.json"), out)
    print(f"\n  {'variant':<8} test accuracy % (mean ± std over seeds)   Δ to std   > spread")
    for variant, s in summary.items():
        std = s["test_accuracy_percent_std"]
        line = (f"  {variant:<8} {s['test_accuracy_percent_mean']:6.2f} ± "
                f"{'n/a' if std is None else f'{std:.2f}'} ({s['seeds']} seeds)")
        if "difference_to_std_percent" in s:
            line += (f"   {s['difference_to_std_percent']:+.2f}   "
                     f"{s['difference_exceeds_seed_spread']}")
        print(line)
    print(f"\nwrote {os.path.abspath(FLAGS.out)}/results.json, accuracy.png, reconstructions.png")


if __name__ == "__main__":
    app.run(main)
