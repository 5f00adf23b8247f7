r"""Racecar §5.3: smoke super-resolution GAN (task A) and its transfer to an auto-encoder (B1).

Task A trains the generator of racecar table 13 (``zoo.smoke_generator``,
16×16 → 64×64) against ``zoo.smoke_discriminator`` on simulated smoke plumes
(``keras_reversible.data`` smoke, phiflow), as Std_A (no reverse pass) and
RR⁶_A (racecar loss on all six generator layers, λ = 0.1 with the official
``l2_loss`` reduction), with table 14's settings as flags: batch 64, Adam
lr 2e-4, 40,000 steps.

The generator's objective is ``L2 + adversarial_weight · GAN + racecar``:
``L2 = tf.nn.l2_loss(G(low) − high)`` (half the sum of squares over the
batch, the reduction of the racecar term), ``GAN`` the non-saturating
cross-entropy of the discriminator on generated frames, summed over the batch.
The paper does not print its GAN weights; ours are flags. The discriminator
sees the high-resolution frame (real or generated) concatenated with the
low-resolution frame up-sampled ×4 (nearest), as in appendix A.4.

Fig. 8 shows the outputs ``G(low)`` and the regenerated low-resolution inputs
``I' = reconstruct(low)``: the paper's claim is that only RR⁶_A recovers the
input. ``results.json`` reports both errors on the test plumes.

Transfer B1 (table 6, B1 columns) is an auto-encoder on the same simulated
smoke. The paper says only that all six generator layers are reused; our
reading: a new encoder ``relu(C(5, 32, 2)) → relu(C(5, 1, 2))`` squeezes the
64×64 frame to a 16×16 code, and the six generator layers decode it back to
64×64. Std_AB1 and RR⁶_AB1 start from the task-A generators (``to_standard``:
phase II trains without the reverse pass), Std_B1 from scratch; the encoder
starts from the same random weights in all three. Loss: per-frame L2
(``½ Σ (ŷ − y)²``), Adam lr 2e-4, 1,000 steps (table 14).

It writes, under ``--out``:

* ``results.json``: per model and seed the test errors (task A: L2 and MSE of
  the output, MSE of the regenerated input; B1: per-frame L2 and MSE), the
  paper's table-6 B1 numbers beside ours, the command, seeds, steps, scale;
* ``fig8_outputs_and_inputs.png``: reference, Std_A and RR⁶_A outputs and
  regenerated low-resolution inputs on test frames;
* ``b1_transfer.png``: the B1 training curves and example outputs.

Finished models are cached under ``<out>/runs/``: a killed study continues
from its last finished model.

Usage:

    python examples/smoke_gan.py --out=runs/smoke                 # CPU scale (see PRESETS)
    python examples/smoke_gan.py --preset=paper --seeds=0,1,2     # table 14, 20 × 120 frames
    python examples/smoke_gan.py --preset=tiny --out=/tmp/smoke   # seconds, for tests
"""

import os
import time

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import zoo  # noqa: E402
from keras_reversible import data  # noqa: E402
from common import experiment  # noqa: E402
from keras_reversible.data import smoke as smoke_data  # noqa: E402

PRESETS = {
    # name: dict(steps, transfer_steps, seeds, width, resolution, num_simulations,
    #            num_frames, train_fraction, batch_size)
    "paper": dict(steps=40000, transfer_steps=1000, seeds=[0, 1, 2], width=1.0, resolution=64,
                  num_simulations=20, num_frames=120, train_fraction=0.1, batch_size=64),
    "cpu": dict(steps=200, transfer_steps=150, seeds=[0], width=0.25, resolution=64,
                num_simulations=10, num_frames=60, train_fraction=0.2, batch_size=16),
    "tiny": dict(steps=4, transfer_steps=4, seeds=[0], width=0.125, resolution=16,
                 num_simulations=2, num_frames=4, train_fraction=0.5, batch_size=4),
}
# Racecar paper, table 6 (B1 columns, 3 runs): mean, std of the L2 loss.
PAPER_TABLE6_B1 = {"Std_AB1": (8401.43, 12559.15), "RR6_AB1": (187.03, 41.61),
                   "Std_B1": (28704.33, 5554.11)}
TASK_A = {"Std_A": 0, "RR6_A": 6}  # name -> depth s
TRANSFER = {"Std_AB1": "Std_A", "RR6_AB1": "RR6_A", "Std_B1": None}  # name -> phase-I model
COLORS = {"Std_A": "tab:blue", "RR6_A": "tab:orange", "Std_AB1": "tab:blue",
          "RR6_AB1": "tab:orange", "Std_B1": "tab:red"}

FLAGS = flags.FLAGS
flags.DEFINE_string("out", "runs/smoke_gan", "Output folder.")
flags.DEFINE_enum("preset", "cpu", list(PRESETS), "Scale preset; flags below override it.")
flags.DEFINE_integer("steps", None, "Task-A GAN steps (paper table 14: 40000).")
flags.DEFINE_integer("transfer_steps", None, "B1 auto-encoder steps (paper table 14: 1000).")
flags.DEFINE_list("seeds", None, "Seeds (paper table 6: 3 runs).")
flags.DEFINE_float("width", None, "Filter-count multiplier of both networks (paper: 1.0).")
flags.DEFINE_integer("resolution", None, "High-resolution frame size (paper: 64).")
flags.DEFINE_integer("num_simulations", None, "Simulated plumes (paper: 20).")
flags.DEFINE_integer("num_frames", None, "Frames per plume (paper: 120).")
flags.DEFINE_float("train_fraction", None, "Fraction of plumes for training (paper: 0.1).")
flags.DEFINE_integer("batch_size", None, "Batch size (paper table 14: 64).")
flags.DEFINE_float("learning_rate", 2e-4, "Adam learning rate (paper table 14: 2e-4).")
flags.DEFINE_float("racecar_weight", 0.1, "λ for every generator layer (paper table 14: 0.1).")
flags.DEFINE_float("adversarial_weight", 1.0, "Weight of the generator's GAN term (ours).")
flags.DEFINE_integer("log_every", 25, "Print and record the losses every N steps.")


def scale():
    """The preset, with the flags that were given."""
    return experiment.resolve_preset(PRESETS[FLAGS.preset], FLAGS)


def upsample(low, factor):
    return tf.repeat(tf.repeat(low, factor, axis=1), factor, axis=2)


class SmokeGAN(keras.Model):
    """Generator (a ``ReversibleModel``) and discriminator trained together by ``fit``.

    ``fit`` takes ``(low, high)`` batches. Metrics: ``d_loss``, ``g_loss`` =
    ``l2_loss + adversarial_loss + racecar_loss`` (each weighted).
    """

    def __init__(self, generator, discriminator, adversarial_weight, factor=4, **kwargs):
        super().__init__(**kwargs)
        self.generator, self.discriminator = generator, discriminator
        self.adversarial_weight, self.factor = adversarial_weight, factor
        self.bce = keras.losses.BinaryCrossentropy(from_logits=True, reduction="sum")
        self.trackers = {k: keras.metrics.Mean(name=k) for k in
                         ("d_loss", "g_loss", "l2_loss", "adversarial_loss", "racecar_loss")}

    def compile(self, g_optimizer, d_optimizer):
        super().compile()
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer

    @property
    def metrics(self):
        return list(self.trackers.values())

    def train_step(self, batch):
        low, high = batch
        cond = upsample(low, self.factor)
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            fake, racecar = self.generator.call_with_racecar_loss(low, training=True)
            d_real = self.discriminator(tf.concat([high, cond], -1), training=True)
            d_fake = self.discriminator(tf.concat([fake, cond], -1), training=True)
            ones, zeros = tf.ones_like(d_real), tf.zeros_like(d_fake)
            d_loss = (self.bce(ones, d_real) + self.bce(zeros, d_fake)) / tf.cast(
                tf.shape(low)[0], tf.float32)
            l2 = tf.nn.l2_loss(fake - high)
            adversarial = self.adversarial_weight * self.bce(ones, d_fake)
            g_loss = l2 + adversarial + racecar
        g_vars = self.generator.trainable_weights
        d_vars = self.discriminator.trainable_weights
        self.g_optimizer.apply_gradients(zip(g_tape.gradient(g_loss, g_vars), g_vars))
        self.d_optimizer.apply_gradients(zip(d_tape.gradient(d_loss, d_vars), d_vars))
        values = {"d_loss": d_loss, "g_loss": g_loss, "l2_loss": l2,
                  "adversarial_loss": adversarial, "racecar_loss": racecar}
        for k, v in values.items():
            self.trackers[k].update_state(v)
        return {k: t.result() for k, t in self.trackers.items()}


class Curve(keras.callbacks.Callback):
    """Records ``(step, logs)`` at the end of every ``fit`` epoch of ``every`` steps."""

    def __init__(self, every):
        super().__init__()
        self.every, self.points = every, []

    def on_epoch_end(self, epoch, logs=None):
        self.points.append([(epoch + 1) * self.every, {k: float(v) for k, v in logs.items()}])


def fit_steps(model, ds, steps, label):
    """``model.fit`` for ``steps`` steps in epochs of ``--log_every`` steps."""
    every = max(1, min(FLAGS.log_every, steps))
    curve = Curve(every)
    start = time.time()
    model.fit(ds.repeat(), steps_per_epoch=every, epochs=max(1, steps // every), verbose=0,
              callbacks=[curve, experiment.EpochProgress(label, max(1, steps // every // 5),
                                                         max(1, steps // every))])
    return curve.points, time.time() - start


def frame_l2(pred, target):
    """Per-frame ``½ Σ (pred − target)²``, averaged over frames."""
    return float(np.mean(0.5 * np.sum((pred - target) ** 2, axis=(1, 2, 3))))


def train_task_a(name, depth, seed, s, train_ds, test):
    keras.utils.set_random_seed(seed)
    low_shape = (s["resolution"] // 4, s["resolution"] // 4, 1)
    generator = zoo.smoke_generator(input_shape=low_shape, width=s["width"], depth=depth,
                                    racecar_weight=FLAGS.racecar_weight)
    discriminator = zoo.smoke_discriminator(
        input_shape=(s["resolution"], s["resolution"], 2), width=s["width"])
    gan = SmokeGAN(generator, discriminator, FLAGS.adversarial_weight)
    gan.compile(keras.optimizers.Adam(FLAGS.learning_rate), keras.optimizers.Adam(FLAGS.learning_rate))
    curve, seconds = fit_steps(gan, train_ds, s["steps"], f"{name} seed {seed}")
    return generator, {**evaluate_generator(generator, test), "curve": curve, "seconds": seconds}


def evaluate_generator(generator, test):
    low, high = test
    out = generator.predict(low, batch_size=64, verbose=0)
    regen = generator.reconstruct(low, batch_size=64)
    return {
        "output_l2_per_frame": frame_l2(out, high),
        "output_mse": float(np.mean((out - high) ** 2)),
        "regenerated_input_mse": float(np.mean((regen - low) ** 2)),
        "regenerated_input_relative_error": float(
            np.linalg.norm(regen - low) / np.linalg.norm(low)),
    }


def autoencoder(decoder, resolution, width, seed):
    """New encoder (64×64 → 16×16 code, seeded) followed by the six generator layers."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((resolution, resolution, 1), name="frame")
    x = keras.layers.Conv2D(max(1, round(32 * width)), 5, strides=2, padding="same",
                            activation="relu", name="enc1")(inputs)
    x = keras.layers.Conv2D(1, 5, strides=2, padding="same", activation="relu", name="enc2")(x)
    return keras.Model(inputs, decoder(x), name="autoencoder_b1")


def train_b1(name, decoder, seed, s, train_ds, test_high, indices):
    model = autoencoder(decoder, s["resolution"], s["width"], seed)
    model.compile(keras.optimizers.Adam(FLAGS.learning_rate),
                  lambda y, p: 0.5 * keras.ops.sum((p - y) ** 2, axis=(1, 2, 3)))
    ds = train_ds.map(lambda low, high: (high, high))
    curve, seconds = fit_steps(model, ds, s["transfer_steps"], f"{name} seed {seed}")
    out = model.predict(test_high, batch_size=64, verbose=0)
    return {"test_l2_per_frame": frame_l2(out, test_high),
            "test_mse": float(np.mean((out - test_high) ** 2)),
            "curve": curve, "seconds": seconds, "examples": out[indices, ..., 0].tolist()}


def test_frames(arrays, s):
    """The test plumes' frames ``(low, high)`` with channel axis."""
    _, test_idx = smoke_data.split_simulations(arrays["high"].shape[0], s["train_fraction"])
    high = arrays["high"][test_idx].reshape(-1, s["resolution"], s["resolution"], 1)
    low = arrays["low"][test_idx].reshape(-1, s["resolution"] // 4, s["resolution"] // 4, 1)
    return low, high


def example_indices(high, count=3):
    """Three test frames among the quarter with the most smoke."""
    mass = high.sum(axis=(1, 2, 3))
    order = np.argsort(-mass, kind="stable")[: max(count, len(mass) // 4)]
    return [int(i) for i in sorted(order[np.linspace(0, len(order) - 1, count).astype(int)])]


def plot_fig8(path, test, generators, indices):
    plt = experiment.pyplot()

    low, high = test[0][indices], test[1][indices]
    rows = [("reference", high, low)]
    for name, g in generators.items():
        rows.append((name, g.predict(low, verbose=0), g.reconstruct(low)))
    n = len(indices)
    fig, axes = plt.subplots(len(rows), 2 * n, figsize=(1.9 * 2 * n, 2.0 * len(rows)))
    res = high.shape[1]
    vmax = (float(high.max()), float(low.max()))  # pooling dims the low-res frames
    for r, (name, out, regen) in enumerate(rows):
        for i in range(n):
            for j, (img, what) in enumerate(((out[i], f"output {res}²" if r else "high res"),
                                             (regen[i], "regen. input" if r else "low res (input)"))):
                ax = axes[r, 2 * i + j]
                ax.imshow(img[..., 0], cmap="magma", vmin=0, vmax=vmax[j])
                ax.set_xticks([]), ax.set_yticks([])
                if r == 0:
                    ax.set_title(f"frame {i + 1}: {what}" if j == 0 else what, fontsize=8)
                elif r and i == 0 and j == 0:
                    ax.set_title(what, fontsize=8)
        axes[r, 0].set_ylabel(name, fontsize=10)
    fig.suptitle("Racecar fig. 8 at our scale: high-res outputs G(low) and regenerated "
                 "low-res inputs I' (test plumes)", fontsize=10)
    fig.tight_layout()
    experiment.save_figure(fig, path, dpi=90)


def plot_b1(path, results, test_high, index):
    plt = experiment.pyplot()

    fig, axes = plt.subplots(1, 5, figsize=(15, 3.2),
                             gridspec_kw={"width_ratios": [2.2, 1, 1, 1, 1]})
    ax = axes[0]
    for name, runs in results.items():
        for k, run in enumerate(runs):
            steps = [p[0] for p in run["curve"]]
            ax.plot(steps, [p[1]["loss"] for p in run["curve"]], ".-", color=COLORS[name],
                    label=name if k == 0 else None)
    ax.set_yscale("log"), ax.set_xlabel("step"), ax.set_ylabel("train L2 per frame")
    ax.set_title("B1 auto-encoder training (cf. fig. 18)", fontsize=9)
    ax.legend(fontsize=8), ax.grid(alpha=0.3)
    vmax = float(test_high[index].max())
    axes[1].imshow(test_high[index, ..., 0], cmap="magma", vmin=0, vmax=vmax)
    axes[1].set_title("reference", fontsize=9)
    for ax, (name, runs) in zip(axes[2:], results.items()):
        ax.imshow(np.asarray(runs[0]["examples"][0]), cmap="magma", vmin=0, vmax=vmax)
        ax.set_title(f"{name} (L2 {runs[0]['test_l2_per_frame']:.3g})", fontsize=9)
    for ax in axes[1:]:
        ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    experiment.save_figure(fig, path, dpi=90)


def main(argv):
    del argv
    s = scale()
    settings = {**s, "learning_rate": FLAGS.learning_rate, "racecar_weight": FLAGS.racecar_weight,
                "adversarial_weight": FLAGS.adversarial_weight, "log_every": FLAGS.log_every}
    settings.pop("seeds")
    cache = experiment.RunCache(FLAGS.out, settings)
    print(f"smoke GAN study: {s} -> {FLAGS.out}", flush=True)
    sim = {k: s[k] for k in ("num_simulations", "num_frames", "resolution")}
    arrays = data.load_smoke_arrays(**sim)
    train_ds = data.smoke_dataset("train", batch_size=s["batch_size"],
                                  train_fraction=s["train_fraction"], drop_remainder=True,
                                  progress=False, **sim)
    test = test_frames(arrays, s)
    low_shape = (s["resolution"] // 4, s["resolution"] // 4, 1)
    indices = example_indices(test[1])
    results_a = {name: [] for name in TASK_A}
    results_b = {name: [] for name in TRANSFER}
    generators = {}
    for seed in s["seeds"]:
        for name, depth in TASK_A.items():
            key = f"{name}-seed{seed}"
            generator = zoo.smoke_generator(input_shape=low_shape, width=s["width"], depth=depth,
                                            racecar_weight=FLAGS.racecar_weight)
            run = cache.restore(key, generator)
            if run is None:
                generator, run = train_task_a(name, depth, seed, s, train_ds, test)
                cache.put_weights(key, generator)
                cache.put(key, run)
            generators.setdefault(seed, {})[name] = generator
            results_a[name].append(run)
            print(f"  {key}: output MSE {run['output_mse']:.4g}, regenerated-input MSE "
                  f"{run['regenerated_input_mse']:.4g}", flush=True)
        for name, source in TRANSFER.items():
            key = f"{name}-seed{seed}"
            run = cache.get(key)
            if run is None:
                if source is None:
                    keras.utils.set_random_seed(seed + 1000)
                    decoder = zoo.smoke_generator(input_shape=low_shape, width=s["width"],
                                                  depth=0).to_standard()
                else:
                    decoder = generators[seed][source].to_standard()
                run = train_b1(name, decoder, seed, s, train_ds, test[1], indices)
                cache.put(key, run)
            else:
                print(f"  {key}: cached")
            results_b[name].append(run)
            print(f"  {key}: test L2 per frame {run['test_l2_per_frame']:.4g}", flush=True)

    summary = {}
    for name, runs in results_a.items():
        summary[name] = {k: [r[k] for r in runs] for k in (
            "output_l2_per_frame", "output_mse", "regenerated_input_mse",
            "regenerated_input_relative_error", "seconds")}
    for name, runs in results_b.items():
        l2 = [r["test_l2_per_frame"] for r in runs]
        summary[name] = {"test_l2_per_frame": l2, "test_l2_mean": float(np.mean(l2)),
                         "test_l2_std": float(np.std(l2)),
                         "test_mse": [r["test_mse"] for r in runs],
                         "seconds": [r["seconds"] for r in runs],
                         "paper_table6_mean_std": PAPER_TABLE6_B1[name]}
    out = {
        **experiment.environment(),
        "task": ("racecar §5.3 / A.4: task A = GAN super-resolution x4 of simulated smoke; "
                 "B1 = auto-encoder on simulated smoke reusing the 6 generator layers"),
        "scale": s,
        "seeds": s["seeds"],
        "steps": s["steps"],
        "transfer_steps": s["transfer_steps"],
        "data": {"train_frames": int(sum(1 for _ in train_ds.unbatch())),
                 "test_frames": int(len(test[1])), "smoke_seconds": float(arrays["seconds"])},
        "settings": settings,
        "results": summary,
    }
    plot_fig8(os.path.join(FLAGS.out, "fig8_outputs_and_inputs.png"), test,
              generators[s["seeds"][0]], indices)
    plot_b1(os.path.join(FLAGS.out, "b1_transfer.png"), results_b, test[1], indices[0])
    experiment.write_results(os.path.join(FLAGS.out, "results.json"), out)
    print("\n  task A   output MSE   regenerated-input MSE (fig. 8: only RR6_A recovers it)")
    for name in TASK_A:
        r = summary[name]
        print(f"  {name:<7} {np.mean(r['output_mse']):.4g}      {np.mean(r['regenerated_input_mse']):.4g}")
    print("\n  B1       test L2 per frame (ours)   paper table 6 (their data scale)")
    for name in TRANSFER:
        r = summary[name]
        print(f"  {name:<8} {r['test_l2_mean']:.4g} ± {r['test_l2_std']:.2g}"
              "            {:.6g} ± {:.6g}".format(*r["paper_table6_mean_std"]))
    print(f"\nwrote {os.path.abspath(FLAGS.out)}/results.json, fig8_outputs_and_inputs.png, "
          "b1_transfer.png")


if __name__ == "__main__":
    app.run(main)
