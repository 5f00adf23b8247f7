r"""How far a transfer-study run's BatchNormalization moving statistics lag its weights.

A BatchNormalization layer normalises with the batch's statistics in training
and with its moving averages (momentum 0.99: about the last 100 steps) in
inference. While the weights change fast, the averages lag behind, and a
network evaluated mid-run can score far below what it would with up-to-date
statistics. This tool loads a phase-I run of ``examples/racecar_cifar_resnet.py``
(its finished ``<run>.weights.h5`` or, with ``--backup``, the mid-run
``<run>.backup/latest.weights.h5``), rebuilt from the run's own settings, and
measures on all test images of the run's task:

* the test accuracy with the saved moving statistics (what the study reports);
* the test accuracy with every BatchNormalization's statistics recomputed as
  the average of the per-batch mean and variance of its input over
  ``--batches`` augmented training batches (in training mode: "precise BN");
* per layer, the median over channels of ``(saved variance + ε) ÷
  (recomputed variance + ε)``, with the layer's ε: the square of the factor
  by which the saved statistics shrink the layer's normalised output.

It adds one entry per run and file to ``<study>/bn_lag.json`` (written
atomically) and prints them. The weights it loads are not changed.

Usage (from the repository root, ``KERAS_REVERSIBLE_DATA`` naming the data):

    python tools/batch_norm_lag.py --study=docs/results/racecar_cifar_resnet \
        --runs=RR20_A-seed0,RR20_A-seed1
    python tools/batch_norm_lag.py --study=docs/results/racecar_cifar_resnet \
        --runs=RR20_A-seed2 --backup
"""

import argparse
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "examples")]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", required=True,
                        help="Output folder of racecar_cifar_resnet.py (holds runs/).")
    parser.add_argument("--runs", required=True,
                        help="Comma-separated phase-I runs, e.g. RR20_A-seed0,Std_A-seed0.")
    parser.add_argument("--backup", action="store_true",
                        help="Load the run's mid-run backup instead of its finished weights.")
    parser.add_argument("--batches", type=int, default=20,
                        help="Training batches the statistics are recomputed from.")
    args = parser.parse_args(argv)
    if args.batches < 1:
        parser.error(f"--batches must be >= 1, got {args.batches}")
    return args


def batch_norm_inputs(model):
    """The BatchNormalization layers of ``model`` and a model returning their inputs."""
    import keras

    layers = [layer for layer in model.layers
              if isinstance(layer, keras.layers.BatchNormalization)]
    return layers, keras.Model(model.inputs, [layer.input for layer in layers])


def recomputed_statistics(model, dataset, batches):
    """Per BatchNormalization layer: (mean, variance) averaged over ``batches`` batches."""
    import numpy as np

    layers, inputs_of = batch_norm_inputs(model)
    sums = [[0.0, 0.0] for _ in layers]
    for x, _ in dataset.take(batches):
        for total, value in zip(sums, inputs_of(x, training=True)):
            value = np.asarray(value).reshape(-1, value.shape[-1])
            total[0] += value.mean(0) / batches
            total[1] += value.var(0) / batches
    return layers, sums


def measure(study, run, backup, batches):
    """The entry of ``bn_lag.json`` for one run (see the module docstring)."""
    import numpy as np
    from absl import flags

    import racecar_cifar_resnet as transfer
    from common import experiment, resumable

    prefix, seed = run.rsplit("-seed", 1)
    if not prefix.endswith("_A"):
        raise SystemExit(f"--runs: {run} is not a phase-I run (<model>_A-seed<N>)")
    runs = os.path.join(study, "runs")
    log_path = os.path.join(runs, f"{run}.epochs.json")
    if not os.path.exists(log_path):
        raise SystemExit(f"--runs: {run} has no epoch log {log_path}")
    log = experiment.read_json(log_path)
    settings = log["settings"]
    weights = (os.path.join(runs, f"{run}.backup", "latest.weights.h5") if backup
               else os.path.join(runs, f"{run}.weights.h5"))
    if not os.path.exists(weights):
        raise SystemExit(f"--runs: {run} has no weights file {weights}")
    defaults = {name: flags.FLAGS[name].default for name in ("width", "racecar_weight")}
    # The Std runs' settings leave out what they do not depend on (λ; the width for ResNet).
    flags.FLAGS([transfer.__file__, f"--network={settings['network']}",
                 *(f"--{name}={settings.get(name, default)}" for name, default in defaults.items()),
                 f"--source={settings['source']}"])
    scale = {key: settings[key] for key in ("batch_size", "train_images", "test_images")}
    train, test = transfer.task_data(scale, "A", int(seed))
    model = transfer.build(not prefix.startswith("Std"), int(seed))
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.load_weights(weights)

    def accuracy():
        return float(model.evaluate(test, verbose=0, return_dict=True)["accuracy"])

    saved_accuracy = accuracy()
    layers, stats = recomputed_statistics(model, train, batches)
    ratios = {layer.name: float(np.median((np.asarray(layer.moving_variance) + layer.epsilon)
                                          / (var + layer.epsilon)))
              for layer, (_, var) in zip(layers, stats)}
    for layer, (mean, var) in zip(layers, stats):
        layer.moving_mean.assign(mean)
        layer.moving_variance.assign(var)
    after = (resumable.resumed_epoch(os.path.dirname(weights)) if backup
             else len(log["epochs"]))
    return {"run": run, "weights": os.path.relpath(weights, study), "after_epoch": after,
            "test_accuracy_saved_statistics": saved_accuracy,
            "test_accuracy_recomputed_statistics": accuracy(),
            "batches": batches, "moving_over_recomputed_variance": ratios}


def main(argv=None):
    args = parse_args(argv)
    from common import experiment

    path = os.path.join(args.study, "bn_lag.json")
    report = experiment.read_json(path) if os.path.exists(path) else {"entries": {}}
    for run in args.runs.split(","):
        entry = measure(args.study, run, args.backup, args.batches)
        key = f"{run}, {entry['weights']}, after epoch {entry['after_epoch']}"
        environment = experiment.environment()
        report["entries"][key] = {**entry, "command": environment["command"]}
        report.update(environment)
        experiment.write_json(path, report)
        ratios = entry["moving_over_recomputed_variance"]
        low, high = (pick(ratios.items(), key=lambda kv: kv[1]) for pick in (min, max))
        print(f"{key}: test accuracy {entry['test_accuracy_saved_statistics']:.4f} with the "
              f"saved statistics, {entry['test_accuracy_recomputed_statistics']:.4f} recomputed "
              f"from {args.batches} batches; moving ÷ recomputed variance {low[1]:.2f} "
              f"({low[0]}) to {high[1]:.2f} ({high[0]})", flush=True)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
