r"""RN fig. 3b: RNL latent feature generation on CIFAR-10, as a picture.

For test images ``x`` of a network trained with RN + RNL (the baseline NN of
RN table 1, as trained by ``examples/rn_cifar.py``), RN algorithm 1's
quantities, as ``ReversibleModel.generate_latent`` returns them:

* ``o``: the softmax output ("original likelihood");
* ``tr(o)``: ``latent_entries`` random non-max entries raised to
  ``latent_closeness · max(o)`` ("transformed likelihood");
* ``α̂ = lrelu(W_fc2ᵀ(tr(o) − b_fc2))``: the generated latent feature (the
  256 inputs of ``fc2``, drawn as 16 × 16);
* the reconstruction of ``α̂``: the reverse pass continued from ``α̂`` down to
  the input (RN eq. 3–4), beside the reconstruction ``x̄`` of ``o`` itself;
* ``ô``: ``fc2`` run forward on ``α̂``, whose loss against the true label is
  RNL's latent loss. A generated feature is a "hard sample" (RN §2.2) when
  ``argmax ô`` differs from the label.

It writes, under ``--out``: ``latent_generation.png`` (the figure),
``results.json`` (hard-sample rate and likelihoods over ``--num_images``
test images, the model, the command, versions).

The network comes from ``--model`` (weights saved by ``rn_cifar.py``, e.g.
``runs/rn_cifar/runs/rn_baseline-rnl-plain-seed0.keras``, no training) or
is trained here with ``rn_cifar.py``'s flags and presets (cached under
``<out>/runs/``).

Usage:

    python examples/rnl_latent.py --out=runs/rnl_latent \
        --model=runs/rn_cifar/runs/rn_baseline-rnl-plain-seed0.keras
    python examples/rnl_latent.py --preset=tiny --out=/tmp/rnl   # trains a tiny model
"""

import os

from absl import app, flags

import numpy as np
import rn_cifar  # the RN training recipe and its flags (same folder)

from common import experiment

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "Weights of an rn_baseline trained with RNL by rn_cifar.py "
                    "(its runs/rn_baseline-rnl-<column>-seed<k>.keras); default: train one.")
flags.DEFINE_integer("num_images", 500, "Test images for the statistics.")
flags.DEFINE_integer("num_shown", 6, "Test images in the figure.")
flags.DEFINE_integer("latent_step", 0, "Step of tr(o)'s random entry choice (seed, step).")
FLAGS.set_default("out", "runs/rnl_latent")


def _stretch(images):
    """Each image stretched to [0, 1] (reconstructions have their own range)."""
    images = np.asarray(images)
    lo = images.min(axis=(1, 2, 3), keepdims=True)
    hi = images.max(axis=(1, 2, 3), keepdims=True)
    return (images - lo) / np.maximum(hi - lo, 1e-12)


def plot(path, x, y, g, class_names):
    plt = experiment.pyplot()
    n = len(x)
    titles = ["input x", "o (softmax)", "tr(o)", "α̂ (256, as 16×16)", "x̄ of α̂ (from tr(o))",
              "x̄ of o", "ô = fc2(α̂)"]
    fig, axes = plt.subplots(n, len(titles), figsize=(13, 1.55 * n), squeeze=False)
    classes = np.arange(g["output"].shape[1])
    for i in range(n):
        row = axes[i]
        row[0].imshow(rn_cifar._show(x[i]), interpolation="nearest")
        row[0].set_ylabel(class_names[y[i]], rotation=0, ha="right", va="center", fontsize=8)
        for ax, key in ((row[1], "output"), (row[2], "transformed"), (row[6], "latent_output")):
            colors = ["tab:green" if c == y[i] else "tab:gray" for c in classes]
            ax.bar(classes, g[key][i], color=colors)
            ax.set_ylim(0, 1)
            ax.set_xticks(classes)
            ax.tick_params(labelsize=5)
        changed = ~np.isclose(g["transformed"][i], g["output"][i])
        row[2].bar(classes[changed], g["transformed"][i][changed], color="tab:red")
        row[3].imshow(g["latent"][i].reshape(16, 16), cmap="magma", interpolation="nearest")
        row[4].imshow(_stretch(g["latent_reconstruction"][i:i + 1])[0], interpolation="nearest")
        row[5].imshow(_stretch(g["reconstruction"][i:i + 1])[0], interpolation="nearest")
        for ax in row[[0, 3, 4, 5]]:
            ax.set_xticks([])
            ax.set_yticks([])
    for ax, title in zip(axes[0], titles):
        ax.set_title(title, fontsize=8)
    fig.suptitle("RNL latent feature generation (RN fig. 3b): green = true class, red = entries "
                 "raised by tr; reconstructions contrast-stretched per image", fontsize=9)
    experiment.save_figure(fig, path, dpi=80, bbox_inches="tight")


CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                 "ship", "truck")


def main(argv):
    del argv
    sc = rn_cifar.scale()
    if FLAGS.model:
        weights, trained = FLAGS.model, None
        print(f"RNL latent generation: weights {weights}")
    else:
        print(f"RNL latent generation: training rn_baseline with RNL "
              f"({sc['train_images'] or 'all'} images, {sc['epochs']} epochs) -> {FLAGS.out}")
        results, cache = rn_cifar.run_study(
            {**sc, "seeds": sc["seeds"][:1]}, ["rn_baseline"], ["rnl"], ["plain"])
        trained = results["rn_baseline"]["plain"]["rnl"][0]
        weights = cache.model_path(f"rn_baseline-rnl-plain-seed{sc['seeds'][0]}")
    model = rn_cifar.build("rn_baseline", "rnl")
    model.load_weights(weights)

    _, test = rn_cifar.datasets({**sc, "test_images": FLAGS.num_images}, False, 0)
    x = np.concatenate([b[0].numpy() for b in test])
    y = np.concatenate([b[1].numpy() for b in test])
    g = model.generate_latent(x, step=FLAGS.latent_step)
    pred, pred_hat = g["output"].argmax(1), g["latent_output"].argmax(1)
    rows = np.arange(len(y))
    stats = {
        "images": int(len(y)),
        "accuracy_of_o": float(np.mean(pred == y)),
        "hard_sample_rate": float(np.mean(pred_hat != y)),
        "hard_sample_rate_where_o_correct": float(np.mean(pred_hat[pred == y] != y[pred == y]))
        if np.any(pred == y) else None,
        "mean_p_true_of_o": float(np.mean(g["output"][rows, y])),
        "mean_p_true_of_o_hat": float(np.mean(g["latent_output"][rows, y])),
        "mean_max_of_o": float(np.mean(g["output"].max(1))),
        "mean_max_of_o_hat": float(np.mean(g["latent_output"].max(1))),
        "mse_reconstruction_of_o_vs_x": float(np.mean((g["reconstruction"] - x) ** 2)),
        "mse_reconstruction_of_tr_o_vs_of_o": float(
            np.mean((g["latent_reconstruction"] - g["reconstruction"]) ** 2)),
    }
    names = CIFAR10_NAMES if FLAGS.dataset == "cifar10" else [str(c) for c in range(100)]
    k = FLAGS.num_shown
    plot(os.path.join(FLAGS.out, "latent_generation.png"), x[:k], y[:k],
         {key: v[:k] for key, v in g.items()}, names)
    out = {
        **experiment.environment(),
        "task": "RN fig. 3b: RNL latent feature generation, rn_baseline on CIFAR",
        "model_weights": os.path.abspath(weights),
        "trained_here": trained is not None,
        "train_images": sc["train_images"] if trained else None,
        "epochs": sc["epochs"] if trained else None,
        "seeds": sc["seeds"][:1] if trained else None,
        "settings": {"latent_entries": FLAGS.latent_entries,
                     "latent_closeness": FLAGS.latent_closeness,
                     "latent_step": FLAGS.latent_step, "dataset": FLAGS.dataset},
        "results": stats,
    }
    experiment.write_results(os.path.join(FLAGS.out, "results.json"), out)
    for key, value in stats.items():
        print(f"  {key}: {value:.4g}" if isinstance(value, float) else f"  {key}: {value}")
    print(f"\nwrote {os.path.abspath(FLAGS.out)}/results.json, latent_generation.png")


if __name__ == "__main__":
    app.run(main)
