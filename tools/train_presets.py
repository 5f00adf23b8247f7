r"""Trains a pretrained preset of the zoo (``weights="<preset>"``) reproducibly.

Each preset is a recipe below that runs an example script's own training
code (no copy of it): ``racecar_mnist_cnn/mnist`` is ``examples/racecar_mnist.py``'s
phase-I RR³_A model, ``racecar_mi_net/mi_task`` is ``examples/racecar_mi.py``'s
RR⁶_A, and the two ``reversible_cifar_resnet`` presets are
``examples/rn_cifar_resnet.py``'s ``std`` and ``rn`` runs (its ``cpu`` preset:
40 epochs of full CIFAR-10, hours on a CPU, resumable after a kill).

It writes, under ``--out`` (default ``runs/presets/<model>-<preset>``):

* ``<model>-<preset>.weights.h5``: the trained weights (written atomically);
* ``results.json`` (atomically): the command, seed, epochs, data, the test
  accuracy measured on the written file reloaded through the zoo constructor
  (``zoo.pretrained.evaluate``), the accuracy ``fit`` reported, the
  training and wall seconds, the file's SHA-256 and size, library versions;
* the example's run cache (``runs/``): a rerun of the same command reuses
  the finished training. ``--runs_from=<folder>`` reads and writes the cache
  under ``<folder>/runs/`` instead, so a study's finished run becomes the
  preset without training again (same settings and seed): the CIFAR ResNet
  presets are ``make studies``' full-data runs,
  ``--runs_from=docs/results/rn_cifar_resnet_50k``.

and prints the ``zoo.pretrained.Preset(...)`` record to paste into the
model's registry entry (``presets={...}``). ``--install`` also copies the
weights to ``zoo/weights/`` and ``results.json`` to
``docs/pretrained/<model>-<preset>.json``; it refuses a run whose epochs or
images were overridden. Adding a preset: add its recipe here, run it with
``--install``, paste the record, list it in ``docs/pretrained.md``;
``tests/test_pretrained.py`` then re-measures it.

MNIST and CIFAR-10 are read from ``$KERAS_REVERSIBLE_DATA`` (local files only).

Usage (from the repository root):

    python tools/train_presets.py --list
    python tools/train_presets.py --preset=racecar_mnist_cnn/mnist --install
    python tools/train_presets.py --preset=racecar_mi_net/mi_task --epochs=4 --out=/tmp/p  # smoke
"""

import argparse
import dataclasses
import importlib
import os
import pathlib
import shutil
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
# This repository's library and zoo, and the example scripts with their helpers (common/).
sys.path[:0] = [str(ROOT), str(ROOT / "examples")]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PAPER_SETTINGS = ("depth", "racecar_weight", "reverse_from", "input_range", "reduction")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How one preset is trained.

    Attributes:
        example: the module under ``examples/`` whose training code runs.
        train: ``train(module, recipe, epochs, train_images, out)`` →
            ``(model, train_seconds, fit_test_accuracy)``.
        seed, epochs: the preset's.
        train_images: the first N training images (None: the loader's all).
        data: the training data and hyper-parameters, in words.
        test_data: key of ``zoo.pretrained.TEST_DATA``.
        test_examples: its size (a run on other data is refused by --install).
        arguments: the constructor arguments the weights fit.
    """

    example: str
    train: object
    seed: int
    epochs: int
    train_images: object
    data: str
    test_data: str
    test_examples: int
    arguments: dict


def _train_racecar_mnist(module, recipe, epochs, train_images, out, cache_root):
    """``examples/racecar_mnist.py``'s phase-I RR³_A model (table 10's settings)."""
    from common import experiment

    flags = module.FLAGS
    flags.source = "local"
    tasks = {"A": module.load_task("A", train_images, None)}  # all 10,000 test images
    settings = {"train_images": train_images, "epochs": epochs, "batch_size": flags.batch_size,
                "learning_rate_a": flags.learning_rate_a, "racecar_weight": flags.racecar_weight}
    cache = experiment.RunCache(cache_root, settings)
    model, run = module.phase_one("RR3_A", recipe.seed, tasks, epochs, cache,
                                  os.path.join(out, "images"))
    return model, run["seconds"], run["test_accuracy"]


def _train_racecar_mi(module, recipe, epochs, train_images, out, cache_root):
    """``examples/racecar_mi.py``'s phase-I RR⁶_A model (table 8's settings)."""
    from common import experiment

    if train_images is not None:
        raise SystemExit("racecar_mi_net trains on the whole training split: no --train_images.")
    flags = module.FLAGS
    flags.eval_every = 20 if epochs % 20 == 0 else epochs  # the example's demo preset: 20
    task_a, mi_a = module.load_task(recipe.seed, "A")
    settings = {"epochs": epochs, "batch_size": flags.batch_size,
                "learning_rate": flags.learning_rate, "racecar_weight": flags.racecar_weight,
                "eval_every": flags.eval_every}
    cache = experiment.RunCache(cache_root, settings)
    model, run = module.phase_one("RR6_A", recipe.seed, epochs, task_a, mi_a, cache,
                                  os.path.join(out, "images"))
    return model, run["seconds"], run["test_accuracy"]


def _cifar_resnet(variant):
    def train(module, recipe, epochs, train_images, out, cache_root):
        """``examples/rn_cifar_resnet.py``'s run of ``variant`` (its ``cpu`` protocol)."""
        from common import experiment, resumable

        flags = module.FLAGS
        flags.preset, flags.epochs, flags.seeds = "cpu", epochs, [str(recipe.seed)]
        flags.train_images = train_images or 0
        flags.resnet_depth = recipe.arguments["depth"]
        flags.shortcut = recipe.arguments["shortcut"]
        sc = module.scale()
        settings = module.run_settings(sc)
        cache = experiment.RunCache(cache_root, settings)
        key = f"resnet{flags.resnet_depth}-{variant}-seed{recipe.seed}"
        run = cache.get(key)
        if run is None:
            run = module.train_one(variant, recipe.seed, sc, cache, key, settings)
            resumable.finish(cache, key, run)
        model = module.build(variant, recipe.seed)
        model.load_weights(os.path.join(cache.dir, f"{key}.weights.h5"))
        return model, run["seconds"], run["test_accuracy"]

    return train


CIFAR_DATA = ("CIFAR-10, all 50,000 training images, C10+ augmentation (pad 4, crop, flip), "
              "divided by the channel means; SGD momentum 0.9, lr 0.1 cosine with a 1-epoch "
              "warm-up, decoupled weight decay 1e-3, batch 128 (examples/rn_cifar_resnet.py, "
              "--preset=cpu)")
RECIPES = {
    "racecar_mnist_cnn/mnist": Recipe(
        example="racecar_mnist", train=_train_racecar_mnist, seed=0, epochs=12,
        train_images=55_000,
        data="MNIST, the first 55,000 of the 60,000 training images (the paper's count, "
             "examples/racecar_mnist.py --preset=full); RR³ (racecar table 10: batch 64, "
             "Adam 1e-3, λ = 1e-5 with l2_loss): the example's phase-I RR3_A model",
        test_data="mnist", test_examples=10_000,
        arguments={"num_classes": 10, "input_shape": (28, 28, 1)}),
    "racecar_mi_net/mi_task": Recipe(
        example="racecar_mi", train=_train_racecar_mi, seed=0, epochs=2000, train_images=None,
        data="the 12-bit task A, the 3,277 training patterns of load_mi_sphere(seed=0); RR⁶ "
             "(racecar table 8: batch 512, Adam 4e-4, λ = 1e-2 with l2_loss, 2,000 epochs): "
             "the example's phase-I RR6_A model",
        test_data="mi_sphere_A_seed0", test_examples=819,
        arguments={"num_classes": 2, "input_shape": (12,)}),
    # Not trained yet (a multi-hour run each): the ResNet-20 of RN table 2, plain and RN.
    "reversible_cifar_resnet/cifar10": Recipe(
        example="rn_cifar_resnet", train=_cifar_resnet("std"), seed=0, epochs=40,
        train_images=None, data=CIFAR_DATA + "; the task loss only (reverse_depth=0)",
        test_data="cifar10", test_examples=10_000,
        arguments={"depth": 20, "shortcut": "A", "num_classes": 10, "input_shape": (32, 32, 3)}),
    "reversible_cifar_resnet/cifar10_rn": Recipe(
        example="rn_cifar_resnet", train=_cifar_resnet("rn"), seed=0, epochs=40,
        train_images=None, data=CIFAR_DATA + "; plus the RN reconstruction loss (λ = 1, "
                                             "reverse_depth=1, mean)",
        test_data="cifar10", test_examples=10_000,
        arguments={"depth": 20, "shortcut": "A", "num_classes": 10, "input_shape": (32, 32, 3)}),
}


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(RECIPES), help="<model>/<preset>")
    parser.add_argument("--list", action="store_true", help="list the recipes and exit")
    parser.add_argument("--out", help="output folder (default runs/presets/<model>-<preset>)")
    parser.add_argument("--runs_from",
                        help="the folder whose runs/ holds the example's run cache (default "
                             "--out): reuse a study's finished run, e.g. "
                             "docs/results/rn_cifar_resnet_50k for the CIFAR ResNet presets")
    parser.add_argument("--epochs", type=int, help="override the recipe's epochs (smoke runs)")
    parser.add_argument("--train_images", type=int,
                        help="override the recipe's training images (smoke runs)")
    parser.add_argument("--install", action="store_true",
                        help="copy the weights to zoo/weights/ and results.json to "
                             "docs/pretrained/ (refused with --epochs / --train_images)")
    args = parser.parse_args(argv)
    if not args.list and not args.preset:
        parser.error("--preset is required (or --list)")
    if args.install and (args.epochs is not None or args.train_images is not None):
        parser.error("--install ships the recipe's run only: drop --epochs / --train_images")
    for name in ("epochs", "train_images"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    return args


def preset_record(results):
    """The ``zoo.pretrained.Preset(...)`` source for the registry entry."""
    fields = ("file", "sha256", "command", "seed", "epochs", "data", "test_data",
              "test_examples", "metric", "value", "date", "train_seconds", "arguments",
              "reversal")
    lines = [f"    {name}={results[name]!r}," for name in fields]
    return "pretrained.Preset(\n" + "\n".join(lines) + "\n)"


def main(argv=None):
    args = parse(argv)
    if args.list:
        for name, recipe in sorted(RECIPES.items()):
            print(f"{name}: {recipe.epochs} epochs, seed {recipe.seed}; {recipe.data}")
        return
    recipe = RECIPES[args.preset]
    entry, preset = args.preset.split("/")
    epochs = args.epochs or recipe.epochs
    train_images = args.train_images or recipe.train_images
    reduced = args.epochs is not None or args.train_images is not None
    out = pathlib.Path(args.out or ROOT / "runs" / "presets" / f"{entry}-{preset}")

    module = importlib.import_module(recipe.example)
    module.FLAGS([recipe.example])  # the example's flags at their defaults
    import keras

    import zoo
    from common import experiment
    from zoo import pretrained

    keras.config.disable_interactive_logging()
    print(f"{args.preset}: {epochs} epochs, seed {recipe.seed} -> {out}", flush=True)
    start = time.time()
    model, train_seconds, fit_accuracy = recipe.train(module, recipe, epochs, train_images,
                                                      str(out), args.runs_from or str(out))
    file = f"{entry}-{preset}.weights.h5"
    path = out / file
    # Written from an uncompiled copy: the model's weights without the optimizer's state.
    plain = zoo.get(entry, **recipe.arguments)
    plain.set_weights(model.get_weights())
    experiment.save_model(plain, str(path), weights_only=True)
    # Measured as a user gets it: the written file, loaded by the constructor.
    loaded = zoo.get(entry, weights=str(path), **recipe.arguments)
    value, examples = pretrained.evaluate(loaded, recipe.test_data)
    if examples != recipe.test_examples and not reduced:
        raise SystemExit(f"{recipe.test_data}: {examples} test examples, expected "
                         f"{recipe.test_examples}; is $KERAS_REVERSIBLE_DATA the full data?")
    env = experiment.environment()
    settings = model.reversal_settings
    results = {
        "preset": args.preset,
        "file": file,
        "sha256": pretrained.sha256(path),
        "bytes": path.stat().st_size,
        "command": env["command"],
        "seed": recipe.seed,
        "epochs": epochs,
        "train_images": train_images,
        "data": recipe.data,
        "scale": "reduced (--epochs/--train_images given): not a preset" if reduced else "recipe",
        "test_data": recipe.test_data,
        "test_examples": examples,
        "metric": "test_accuracy",
        "value": value,
        "fit_test_accuracy": fit_accuracy,
        "date": env["finished_at"].split()[0],
        "train_seconds": round(float(train_seconds), 1),
        "wall_seconds": round(time.time() - start, 1),
        "arguments": recipe.arguments,
        "reversal": {k: settings[k] for k in PAPER_SETTINGS},
        **{k: v for k, v in env.items() if k != "command"},
    }
    experiment.write_results(str(out / "results.json"), results)
    print(f"{args.preset}: test accuracy {value:.4f} on {examples} test examples (fit reported "
          f"{fit_accuracy:.4f}); training {train_seconds:.0f}s; {results['bytes']:,} bytes")
    if args.install:
        from keras_reversible.files import atomic_path

        for source, target in ((path, ROOT / "zoo" / pretrained.WEIGHTS_FOLDER / file),
                               (out / "results.json", ROOT / "docs" / "pretrained" /
                                f"{entry}-{preset}.json")):
            with atomic_path(str(target)) as tmp:
                shutil.copyfile(source, tmp)
            print(f"installed {target.relative_to(ROOT)}")
    print(f"\nThe record for zoo.info({entry!r}).presets[{preset!r}]:\n{preset_record(results)}")


if __name__ == "__main__":
    main()
