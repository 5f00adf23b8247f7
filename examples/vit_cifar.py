r"""A transformer trained with and without racecar: does its reverse pass find the input again?

Trains ``zoo.reversible_vit`` (patch convolution, multi-head attention,
LayerNormalization, MLP; DESIGN §7) on real CIFAR-10 twice per seed:

* ``std``: the task loss only (``racecar_weight=0``);
* ``racecar``: plus the racecar loss on every constrained point (λ = 1,
  ``reduction="mean"``, the entry's defaults).

Both use Adam and the same data, seeds and epochs. After training it
measures, on test images, the test accuracy and how well the reverse pass
from ``I_r`` (the final LayerNormalization) regenerates the input
(``reconstruct``: mean squared error to the image, in pixel units [0, 1]).
The attention weights of the forward pass are data in the reverse pass; the
value path and every Dense/Conv are transposed with the same weights.

It writes, under ``--out``:

* ``results.json``: accuracy and reconstruction MSE per variant and seed,
  their ratio, epochs, images, wall time per run, the command and versions;
* ``regenerated_inputs.png``: test images and the reverse pass's
  reconstructions for both variants.

Finished runs are cached under ``<out>/runs/`` (result and weights): a
killed study continues from its last finished run.

Usage:

    python examples/vit_cifar.py --out=runs/vit_cifar                 # CPU scale
    python examples/vit_cifar.py --preset=tiny --out=/tmp/vit         # seconds, for tests
    python examples/vit_cifar.py --train_images=50000 --epochs=100    # a longer run
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

VARIANTS = ("std", "racecar")
PRESETS = {
    "cpu": dict(train_images=10000, test_images=2000, epochs=5, seeds=[0, 1]),
    "tiny": dict(train_images=256, test_images=64, epochs=1, seeds=[0]),
}

FLAGS = flags.FLAGS
flags.DEFINE_string("out", "runs/vit_cifar", "Output folder.")
flags.DEFINE_enum("preset", "cpu", list(PRESETS), "Scale: images, epochs and seeds.")
flags.DEFINE_integer("train_images", None, "Training images (CIFAR-10 has 50,000).")
flags.DEFINE_integer("test_images", None, "Test images (CIFAR-10 has 10,000).")
flags.DEFINE_integer("epochs", None, "Epochs per run.")
flags.DEFINE_list("seeds", None, "Seeds.")
flags.DEFINE_integer("batch_size", 64, "Batch size.")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
flags.DEFINE_float("racecar_weight", None, "λ of the racecar variant (default: the zoo entry's, 1).")
flags.DEFINE_enum("source", "local", ["auto", "local", "tfds"], "Where the images come from.")


def _arrays(split, limit):
    ds = data.cifar_dataset("cifar10", split, batch_size=1000, limit=limit, augment=False,
                            shuffle=False, normalization="unit", source=FLAGS.source)
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return np.concatenate(xs), np.concatenate(ys)


def run(variant, seed, train, test, settings, cache):
    weight = 0.0 if variant == "std" else FLAGS.racecar_weight
    # The std runs do not depend on λ; a racecar run with a λ of its own has its own key.
    key = f"{variant}-seed{seed}" if variant == "std" or weight is None else (
        f"racecar{weight:g}-seed{seed}")
    keras.utils.set_random_seed(seed)
    model = zoo.reversible_vit(**({} if weight is None else {"racecar_weight": weight}))
    cached = cache.restore(key, model)
    if cached is not None:
        return cached, model
    model.compile(keras.optimizers.Adam(FLAGS.learning_rate),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    start = time.time()
    model.fit(*train, batch_size=FLAGS.batch_size, epochs=settings["epochs"], verbose=0,
              callbacks=[experiment.EpochProgress(key, 1, settings["epochs"])])
    seconds = time.time() - start
    x_test, y_test = test
    _, accuracy = model.evaluate(x_test, y_test, batch_size=250, verbose=0)[:2]
    regenerated = np.asarray(model.reconstruct(x_test, batch_size=250))
    result = dict(variant=variant, seed=seed, test_accuracy=float(accuracy),
                  reconstruction_mse=float(np.mean((regenerated - x_test) ** 2)),
                  train_seconds=seconds, racecar_weight=model.reversal_settings["racecar_weight"])
    cache.put_weights(key, model)
    cache.put(key, result)
    return result, model


def plot(path, images, reconstructions):
    plt = experiment.pyplot()

    rows = [("test image", images), *reconstructions.items()]
    fig, axes = plt.subplots(len(rows), len(images), figsize=(1.3 * len(images), 1.4 * len(rows)))
    for r, (label, batch) in enumerate(rows):
        for c, image in enumerate(batch):
            ax = axes[r, c]
            ax.imshow(np.clip(image, 0, 1))
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.suptitle("ViT on CIFAR-10: the reverse pass from I_r back to the pixels", fontsize=9)
    experiment.save_figure(fig, path, bbox_inches="tight")


def main(argv):
    del argv
    settings = experiment.resolve_preset(PRESETS[FLAGS.preset], FLAGS)
    os.makedirs(FLAGS.out, exist_ok=True)
    cache = experiment.RunCache(FLAGS.out, dict(settings, batch_size=FLAGS.batch_size,
                                                learning_rate=FLAGS.learning_rate))
    train = _arrays("train", settings["train_images"])
    test = _arrays("test", settings["test_images"])
    print(f"CIFAR-10: {len(train[0])} training, {len(test[0])} test images; "
          f"{settings['epochs']} epochs; seeds {settings['seeds']}", flush=True)
    runs, examples = [], {}
    for seed in settings["seeds"]:
        for variant in VARIANTS:
            result, model = run(variant, seed, train, test, settings, cache)
            runs.append(result)
            print(f"  {variant} seed {seed}: accuracy {result['test_accuracy']:.4f}, "
                  f"reconstruction MSE {result['reconstruction_mse']:.4f}", flush=True)
            if seed == settings["seeds"][0]:
                examples[variant] = np.asarray(model.reconstruct(test[0][:8]))
    summary = {}
    for variant in VARIANTS:
        mine = [r for r in runs if r["variant"] == variant]
        summary[variant] = {
            metric: dict(mean=float(np.mean([r[metric] for r in mine])),
                         std=float(np.std([r[metric] for r in mine])))
            for metric in ("test_accuracy", "reconstruction_mse", "train_seconds")}
    ratio = summary["std"]["reconstruction_mse"]["mean"] / summary["racecar"][
        "reconstruction_mse"]["mean"]
    experiment.write_results(os.path.join(FLAGS.out, "results.json"), dict(
        study="reversible_vit on CIFAR-10, std vs racecar", **settings,
        batch_size=FLAGS.batch_size, learning_rate=FLAGS.learning_rate, source=FLAGS.source,
        runs=runs, summary=summary, reconstruction_mse_ratio_std_over_racecar=ratio,
        **experiment.environment()))
    plot(os.path.join(FLAGS.out, "regenerated_inputs.png"), test[0][:8], examples)
    print(f"std / racecar reconstruction MSE: {ratio:.1f}×")
    print(f"wrote {os.path.abspath(FLAGS.out)}/results.json, regenerated_inputs.png")


if __name__ == "__main__":
    app.run(main)
