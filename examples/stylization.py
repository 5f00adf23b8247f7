r"""Racecar §5.4: Gatys stylization with a VGG-19 trained Std vs RR¹⁶.

Trains ``zoo.reversible_vgg19`` as Std_A (no reverse pass) and RR¹⁶_A (racecar
loss on all 16 convolutions, ``l2_loss`` reduction), then uses each network's
features for the stylization of Gatys et al. (racecar eq. 3–4: content loss
``½ Σ (F_g − F_p)²`` on ``block4_relu2``; style loss ``Σ_t ω_t E_t``, ``E_t =
Σ (G_g − G_a)² / (4 N_t² M_t²)`` with Gram matrices ``G`` of ``block{1..5}_relu1``,
``ω_t = 1/5``), optimising the pixels with Adam and clipping them to [0, 1].

The paper trains on ImageNet (224×224, table 15: λ = 1e-10, 36 epochs). On
this package's CPU scale (``--preset=cpu``) the network is the CIFAR layout
of VGG-19 (BN after each convolution, ``--width`` × the filter counts),
trained for a few hundred steps on real CIFAR-10 images in [0, 1] with SGD
(momentum 0.9) and racecar's CIFAR λ = 1e-7 (table 12); the stylization runs
on 64×64 images (the convolutions are copied into a 64×64 model). Pass
``--dataset=imagenet2012`` (TFDS, prepared by the user) with
``--train_size=224 --image_size=224 --racecar_weight=1e-10 --width=1`` for the
paper's setting (the ImageNet layout of VGG-19 needs images above 64 pixels).

Three tests, each from the same starting image for both networks:

* **two shapes** (fig. 11): a disc (source) and a square (style) of the same
  colours on the same background; only ``L_style`` is optimised, starting from
  the source. The paper: RR¹⁶_A leaves the shape almost unchanged, Std_A
  distorts it. Reported: MSE between result and source, and the IoU of the
  result's object mask with the source's disc.
* **low to high resolution** (fig. 12): content = a 64×64 crop of a natural
  photo (matplotlib's ``grace_hopper.jpg``) down-sampled 4× and up-sampled
  back (bilinear), style = the sharp crop mirrored left-right (the same
  textures, other positions); the result starts from the blurred image. The
  paper: RR¹⁶_A's result is closer to the sharp reference. Reported: MSE to the
  sharp reference before and after.
* **natural stylization** (fig. 10, qualitative): the photo in the style of
  matplotlib's ``Minduka_Present_Blue_Pack.png``.

It writes, under ``--out``: ``results.json`` (test accuracy of both networks,
the numbers above, the command, seeds, steps, scale) and
``stylization.png``. Trained networks are cached under ``<out>/runs/`` (the
stylizations are recomputed on every run: change their flags freely).

Usage:

    python examples/stylization.py --out=runs/stylization        # CPU scale
    python examples/stylization.py --preset=tiny --out=/tmp/sty  # seconds, for tests
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

PRESETS = {
    # name: dict(steps, seeds, width, batch_size, image_size, style_steps, test_limit)
    "cpu": dict(steps=1000, seeds=[0], width=0.25, batch_size=32, image_size=64,
                style_steps=300, test_limit=2000),
    "tiny": dict(steps=3, seeds=[0], width=0.125, batch_size=8, image_size=32,
                 style_steps=3, test_limit=64),
}
MODELS = {"Std_A": 0, "RR16_A": 16}  # name -> depth s
NUM_STYLE_LAYERS = 5  # block1..5 (see feature_extractor)
BACKGROUND, OBJECT = (0.85, 0.9, 0.95), (0.8, 0.35, 0.1)

FLAGS = flags.FLAGS
flags.DEFINE_string("out", "runs/stylization", "Output folder.")
flags.DEFINE_enum("preset", "cpu", list(PRESETS), "Scale preset; flags below override it.")
flags.DEFINE_integer("steps", None, "VGG training steps (paper: 36 ImageNet epochs).")
flags.DEFINE_list("seeds", None, "Seeds.")
flags.DEFINE_float("width", None, "Filter-count multiplier of VGG-19 (paper: 1.0).")
flags.DEFINE_integer("batch_size", None, "Training batch size (paper table 15 / A.5: 24).")
flags.DEFINE_integer("image_size", None, "Side of the stylization images.")
flags.DEFINE_integer("style_steps", None, "Adam steps of each stylization.")
flags.DEFINE_integer("test_limit", None, "Test images for the accuracy.")
flags.DEFINE_enum("dataset", "cifar10", ["cifar10", "imagenet2012"],
                  "Training data (imagenet2012: TFDS, prepared by the user).")
flags.DEFINE_integer("train_size", 32, "Training image side (224 for ImageNet).")
flags.DEFINE_float("learning_rate", 0.01, "SGD learning rate (paper table 15: 0.01 at first).")
flags.DEFINE_float("racecar_weight", 1e-7,
                   "λ for every convolution (paper: 1e-10 on ImageNet; 1e-7 is table 12's CIFAR value).")
flags.DEFINE_float("content_weight", 1.0, "η of L_total = η L_content + δ L_style.")
flags.DEFINE_float("style_weight", 100.0, "δ of L_total = η L_content + δ L_style.")
flags.DEFINE_float("style_learning_rate", 0.01, "Adam learning rate on the pixels.")
flags.DEFINE_integer("log_every", 50, "Record the training losses every N steps.")
flags.DEFINE_integer("calibration_batches", 8, "Training batches the reverse BN statistics are "
                     "calibrated on before the reconstruction error.")


def scale():
    """The preset, with the flags that were given."""
    return experiment.resolve_preset(PRESETS[FLAGS.preset], FLAGS)


def training_data(s, seed):
    """``(train_ds, (x_test, y_test), num_classes)``, images in [0, 1]."""
    if FLAGS.dataset == "imagenet2012":
        import tensorflow_datasets as tfds

        def prep(x, y):
            return tf.image.resize(tf.cast(x, tf.float32) / 255.0, [FLAGS.train_size] * 2), y

        train = tfds.load("imagenet2012", split="train", as_supervised=True)
        train = train.shuffle(10000, seed=seed).map(prep).batch(s["batch_size"], drop_remainder=True)
        test = tfds.load("imagenet2012", split="validation", as_supervised=True).take(s["test_limit"])
        x_test, y_test = map(np.stack, zip(*tfds.as_numpy(test.map(prep))))
        return train, (x_test, y_test), 1000
    train = data.cifar_dataset("cifar10", "train", batch_size=s["batch_size"], seed=seed,
                               normalization="unit", drop_remainder=True)
    x_test, y_test = data.load_cifar_arrays("cifar10", "test")
    x_test = x_test[: s["test_limit"]].astype("float32") / 255.0
    return train, (x_test, y_test[: s["test_limit"]].astype("int32")), 10


def train_vgg(name, depth, seed, s):
    train, (x_test, y_test), num_classes = training_data(s, seed)
    keras.utils.set_random_seed(seed)
    model = zoo.reversible_vgg19(num_classes=num_classes, input_shape=(FLAGS.train_size,) * 2 + (3,),
                                 width=s["width"], depth=depth,
                                 racecar_weight=FLAGS.racecar_weight)
    model.compile(keras.optimizers.SGD(FLAGS.learning_rate, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    every = max(1, min(FLAGS.log_every, s["steps"]))
    epochs = max(1, s["steps"] // every)
    start = time.time()
    history = model.fit(train.repeat(), steps_per_epoch=every, epochs=epochs, verbose=0,
                        callbacks=[experiment.EpochProgress(f"{name} seed {seed}",
                                                            max(1, epochs // 5), epochs)])
    seconds = time.time() - start
    acc = model.evaluate(x_test, y_test, batch_size=100, verbose=0, return_dict=True)["accuracy"]
    # The same reverse BN statistics for both (Std_A never ran its reverse pass).
    model.calibrate_reverse_statistics(train.take(FLAGS.calibration_batches))
    rec = model.reconstruct(x_test[:256], batch_size=64)
    return model, {
        "test_accuracy": float(acc),
        "input_reconstruction_relative_error": float(
            np.linalg.norm(rec - x_test[:256]) / np.linalg.norm(x_test[:256])),
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "seconds": seconds,
    }


def feature_extractor(model, size, width):
    """The trained convolutions (and BN) in a ``size``×``size`` model: style and content features.

    Style: the first activated convolution of each block; content: ``block4``'s second
    (``block{b}_relu{i}`` in the CIFAR layout, ``block{b}_conv{i}`` in the ImageNet one).
    """
    cifar = any(layer.name == "block1_bn1" for layer in model.layers)
    if cifar != (size <= zoo.vgg.SMALL_INPUT):
        raise ValueError(f"--image_size={size} gives the other VGG-19 layout than the trained "
                         f"network's; use a size {'<=' if cifar else '>'} {zoo.vgg.SMALL_INPUT}.")
    wide = zoo.reversible_vgg19(num_classes=model.output.shape[-1], input_shape=(size, size, 3),
                                width=width, depth=0)
    for layer in wide.layers:
        if layer.name.startswith("block") and layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    act = "relu" if cifar else "conv"
    names = [f"block{b}_{act}1" for b in range(1, 6)] + [f"block4_{act}2"]
    return keras.Model(wide.inputs, [wide.get_layer(n).output for n in names])


def gram(features):
    """Eq. 4's ``G = Fᵀ F`` of one image's ``(1, H, W, N)`` features, and ``M = H·W``."""
    n = tf.shape(features)[-1]
    flat = tf.reshape(features, [-1, n])
    return tf.matmul(flat, flat, transpose_a=True), tf.cast(tf.shape(flat)[0], tf.float32)


def stylize(extractor, start, content=None, style=None, steps=100):
    """Minimises ``η L_content(content, g) + δ L_style(style, g)`` over the pixels of ``g``.

    ``content=None`` optimises the style loss only (fig. 11). Returns the image
    and the final losses.
    """
    def features(img):
        out = extractor(img[None], training=False)
        return out[:NUM_STYLE_LAYERS], out[-1]

    style_grams = [gram(f)[0] for f in features(tf.constant(style))[0]]
    content_feat = None if content is None else features(tf.constant(content))[1]
    image = tf.Variable(start)
    optimizer = keras.optimizers.Adam(FLAGS.style_learning_rate)
    weight = 1.0 / NUM_STYLE_LAYERS

    @tf.function
    def losses():
        style_f, content_f = features(image)
        l_style = 0.0
        for f, a in zip(style_f, style_grams):
            g, m = gram(f)
            n = tf.cast(tf.shape(g)[0], tf.float32)
            l_style += weight * tf.reduce_sum((g - a) ** 2) / (4.0 * n**2 * m**2)
        l_content = 0.0 if content_feat is None else 0.5 * tf.reduce_sum((content_f - content_feat) ** 2)
        return l_style, l_content

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            l_style, l_content = losses()
            total = FLAGS.style_weight * l_style + FLAGS.content_weight * l_content
        optimizer.apply_gradients([(tape.gradient(total, image), image)])
        image.assign(tf.clip_by_value(image, 0.0, 1.0))

    for _ in range(steps):
        step()
    l_style, l_content = losses()
    return image.numpy(), {"style_loss": float(l_style), "content_loss": float(l_content)}


def two_shapes(size):
    """Fig. 11's pair: a disc (source) and a square (style) of equal area, same colours."""
    yy, xx = np.mgrid[:size, :size] + 0.5
    c = size / 2
    disc = (yy - c) ** 2 + (xx - c) ** 2 <= (0.28 * size) ** 2
    half = 0.28 * size * np.sqrt(np.pi) / 2
    square = (np.abs(yy - c) <= half) & (np.abs(xx - c) <= half)

    def paint(mask):
        return np.where(mask[..., None], OBJECT, BACKGROUND).astype("float32")

    return paint(disc), paint(square), disc


def object_mask(image):
    """Pixels closer to the object colour than to the background colour."""
    return (np.sum((image - OBJECT) ** 2, -1) < np.sum((image - BACKGROUND) ** 2, -1))


def sample_image(name, size):
    """A matplotlib sample image as float32 RGB ``size``×``size`` in [0, 1] (centre crop)."""
    import matplotlib.cbook
    import matplotlib.image

    img = matplotlib.image.imread(matplotlib.cbook.get_sample_data(name, asfileobj=False))
    img = img.astype("float32") / (255.0 if img.dtype == np.uint8 else 1.0)
    if img.shape[-1] == 4:  # composite on white
        img = img[..., :3] * img[..., 3:] + (1 - img[..., 3:])
    side = min(img.shape[:2])
    top, left = (img.shape[0] - side) // 2, (img.shape[1] - side) // 2
    img = img[top:top + side, left:left + side]
    return tf.image.resize(img, [size, size], antialias=True).numpy().clip(0, 1)


def run_tests(extractor, size, steps):
    source, style, disc = two_shapes(size)
    shapes, shapes_losses = stylize(extractor, source, style=style, steps=steps)
    mask = object_mask(shapes)
    sharp = sample_image("grace_hopper.jpg", size)
    low = tf.image.resize(sharp, [size // 4] * 2, antialias=True)
    blurred = tf.image.resize(low, [size, size], method="bilinear").numpy().clip(0, 1)
    upres, upres_losses = stylize(extractor, blurred, content=blurred, style=sharp[:, ::-1],
                                  steps=steps)
    present = sample_image("Minduka_Present_Blue_Pack.png", size)
    natural, natural_losses = stylize(extractor, sharp, content=sharp, style=present, steps=steps)
    metrics = {
        "shapes_mse_to_source": float(np.mean((shapes - source) ** 2)),
        "shapes_iou_with_source_disc": float((mask & disc).sum() / max(1, (mask | disc).sum())),
        "shapes_losses": shapes_losses,
        "upres_mse_to_sharp_before": float(np.mean((blurred - sharp) ** 2)),
        "upres_mse_to_sharp_after": float(np.mean((upres - sharp) ** 2)),
        "upres_losses": upres_losses,
        "natural_losses": natural_losses,
    }
    images = {"source": source, "style": style, "shapes": shapes, "sharp": sharp,
              "blurred": blurred, "upres": upres, "present": present, "natural": natural}
    return metrics, images


def plot(path, images, metrics):
    """One row per test: its inputs, then each network's result."""
    plt = experiment.pyplot()

    first = next(iter(images.values()))
    before = metrics[next(iter(metrics))]["upres_mse_to_sharp_before"]
    rows = [
        [("fig. 11: source", first["source"]), ("style", first["style"])]
        + [(f"{n} (style loss only)\nMSE to source {metrics[n]['shapes_mse_to_source']:.3g}, "
            f"IoU {metrics[n]['shapes_iou_with_source_disc']:.2f}", im["shapes"])
           for n, im in images.items()],
        [("fig. 12: sharp reference", first["sharp"]),
         (f"blurred: content and start\nMSE to sharp {before:.3g}", first["blurred"])]
        + [(f"{n}\nMSE to sharp {metrics[n]['upres_mse_to_sharp_after']:.3g}", im["upres"])
           for n, im in images.items()],
        [("fig. 10: content", first["sharp"]), ("style", first["present"])]
        + [(n, im["natural"]) for n, im in images.items()],
    ]
    fig, axes = plt.subplots(len(rows), len(rows[0]), figsize=(2.6 * len(rows[0]), 2.9 * len(rows)))
    for row_axes, row in zip(axes, rows):
        for ax, (title, img) in zip(row_axes, row):
            ax.imshow(np.clip(img, 0, 1))
            ax.set_title(title, fontsize=8)
            ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle("Gatys stylization with the features of VGG-19 Std_A vs RR16_A", fontsize=10)
    fig.tight_layout()
    experiment.save_figure(fig, path, dpi=90)


def main(argv):
    del argv
    s = scale()
    train_settings = {k: v for k, v in s.items() if k not in ("seeds", "image_size", "style_steps")}
    train_settings.update(dataset=FLAGS.dataset, train_size=FLAGS.train_size,
                          learning_rate=FLAGS.learning_rate, racecar_weight=FLAGS.racecar_weight,
                          log_every=FLAGS.log_every, calibration_batches=FLAGS.calibration_batches)
    settings = {**train_settings, "image_size": s["image_size"], "style_steps": s["style_steps"],
                "content_weight": FLAGS.content_weight, "style_weight": FLAGS.style_weight,
                "style_learning_rate": FLAGS.style_learning_rate}
    # Only the trained networks are cached; the stylizations take seconds to minutes.
    cache = experiment.RunCache(FLAGS.out, train_settings)
    print(f"stylization study: {s} -> {FLAGS.out}", flush=True)
    results = {name: [] for name in MODELS}
    first_images = {}
    for seed in s["seeds"]:
        for name, depth in MODELS.items():
            key = f"{name}-seed{seed}"
            model = zoo.reversible_vgg19(
                num_classes=1000 if FLAGS.dataset == "imagenet2012" else 10,
                input_shape=(FLAGS.train_size,) * 2 + (3,), width=s["width"], depth=depth,
                racecar_weight=FLAGS.racecar_weight)
            run = cache.restore(key, model)
            if run is None:
                model, run = train_vgg(name, depth, seed, s)
                cache.put_weights(key, model)
                cache.put(key, run)
            start = time.time()
            metrics, images = run_tests(feature_extractor(model, s["image_size"], s["width"]),
                                        s["image_size"], s["style_steps"])
            run = {**run, **metrics, "stylization_seconds": time.time() - start}
            if seed == s["seeds"][0]:
                first_images[name] = images
            results[name].append(run)
            print(f"  {key}: test accuracy {run['test_accuracy']:.3f}, shapes MSE "
                  f"{run['shapes_mse_to_source']:.3g} (IoU {run['shapes_iou_with_source_disc']:.2f}), "
                  f"up-res MSE {run['upres_mse_to_sharp_before']:.3g} -> "
                  f"{run['upres_mse_to_sharp_after']:.3g}", flush=True)

    keys = ("test_accuracy", "input_reconstruction_relative_error", "shapes_mse_to_source",
            "shapes_iou_with_source_disc", "upres_mse_to_sharp_before", "upres_mse_to_sharp_after",
            "seconds", "stylization_seconds")
    summary = {name: {k: [r[k] for r in runs] for k in keys} for name, runs in results.items()}
    for name, runs in results.items():
        summary[name]["losses"] = [{k: r[k] for k in ("shapes_losses", "upres_losses",
                                                      "natural_losses")} for r in runs]
    out = {
        **experiment.environment(),
        "task": ("racecar §5.4 / A.5: Gatys stylization with VGG-19 features, Std_A vs RR16_A "
                 f"(trained on {FLAGS.dataset})"),
        "scale": s,
        "seeds": s["seeds"],
        "steps": s["steps"],
        "settings": settings,
        "paper": {"top5_accuracy_phase_II": {"RR16_AA": 0.7759, "Std_AA": 0.7528},
                  "claims": ["fig. 11: RR16_A keeps the source shape, Std_A distorts it",
                             "fig. 12: RR16_A's up-res result is closer to the sharp image"]},
        "results": summary,
    }
    plot(os.path.join(FLAGS.out, "stylization.png"), first_images,
         {n: results[n][0] for n in MODELS})
    experiment.write_results(os.path.join(FLAGS.out, "results.json"), out)
    print("\n  model    test acc.   fig. 11 MSE to source (IoU)   fig. 12 MSE to sharp (start)")
    for name, r in summary.items():
        print(f"  {name:<8} {np.mean(r['test_accuracy']):.3f}       "
              f"{np.mean(r['shapes_mse_to_source']):.3g} ({np.mean(r['shapes_iou_with_source_disc']):.2f})"
              f"                  {np.mean(r['upres_mse_to_sharp_after']):.3g} "
              f"({np.mean(r['upres_mse_to_sharp_before']):.3g})")
    print(f"\nwrote {os.path.abspath(FLAGS.out)}/results.json, stylization.png")


if __name__ == "__main__":
    app.run(main)
