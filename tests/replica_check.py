"""Compares one training step on 1 device with the same step on 2 replicas.

Run as a script (``python tests/replica_check.py``): logical devices must be
configured before TensorFlow initialises, which a pytest worker has already
done. For each configuration it builds the same model twice with the same
weights, once under the default strategy and once under a
``MirroredStrategy`` over two logical CPU devices, runs ``fit`` for one step
of plain SGD (lr = 1, so the weight change is minus the gradient) on the same
global batch, then ``evaluate``, and prints one JSON line per configuration
with the largest differences of every metric and of the gradients.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration()] * 2,
)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_reversible as kr  # noqa: E402
import zoo  # noqa: E402

GLOBAL_BATCH = 16
CLASSES = 4


def small_cnn(settings, srip, l2):
    reg = kr.SRIP(1e-2) if srip else (keras.regularizers.L2(1e-3) if l2 else None)
    inputs = keras.Input((8, 8, 2))
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", kernel_regularizer=reg)(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="tanh",
                            kernel_regularizer=keras.regularizers.L2(1e-3) if l2 else None)(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(CLASSES, activation="softmax")(x)
    return kr.ReversibleModel(inputs, outputs, **settings)


CONFIGS = {
    "mean": dict(settings=dict(reduction="mean"), srip=False, l2=False),
    # One random entry of the 4 raised per sample (RNL default): each replica
    # takes its rows of the global batch's draw.
    "mean+latent+srip": dict(
        settings=dict(reduction="mean", latent_generation=True), srip=True, l2=False),
    "l2_loss+latent+srip+l2": dict(
        settings=dict(reduction="l2_loss", racecar_weight=1e-2,
                      latent_generation={"num_entries": 2}),
        srip=True, l2=True),
    "zoo:racecar_mnist_cnn": None,  # l2_loss, reverse pass from I_r (a head after it)
}


def build(name, cfg):
    if cfg is None:
        model = zoo.racecar_mnist_cnn(num_classes=CLASSES, input_shape=(8, 8, 1))
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    else:
        model = small_cnn(cfg["settings"], cfg["srip"], cfg["l2"])
        loss = keras.losses.SparseCategoricalCrossentropy()
    model.compile(keras.optimizers.SGD(1.0), loss)
    return model


def one_step(name, cfg, weights, x, y, strategy):
    with strategy.scope():
        model = build(name, cfg)
        model.set_weights(weights)
    before = [np.array(w) for w in model.trainable_weights]
    hist = model.fit(x, y, batch_size=GLOBAL_BATCH, epochs=1, shuffle=False, verbose=0).history
    step = [np.array(w) - b for w, b in zip(model.trainable_weights, before)]
    evaluated = model.evaluate(x, y, batch_size=GLOBAL_BATCH, verbose=0, return_dict=True)
    return {k: v[0] for k, v in hist.items()}, evaluated, step


def main():
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
    rng = np.random.default_rng(0)
    for name, cfg in CONFIGS.items():
        keras.utils.set_random_seed(0)
        channels = 1 if cfg is None else 2
        x = rng.uniform(size=(GLOBAL_BATCH, 8, 8, channels)).astype("float32")
        y = rng.integers(0, CLASSES, GLOBAL_BATCH)
        weights = build(name, cfg).get_weights()
        single = one_step(name, cfg, weights, x, y, tf.distribute.get_strategy())
        multi = one_step(name, cfg, weights, x, y, mirrored)

        def rel(a, b):
            return float(abs(a - b) / max(abs(a), 1e-12))

        grad_diff = max(float(np.max(np.abs(a - b))) for a, b in zip(single[2], multi[2]))
        grad_scale = max(float(np.max(np.abs(a))) for a in single[2])
        print(json.dumps({
            "config": name,
            "replicas": mirrored.num_replicas_in_sync,
            "fit": {k: [single[0][k], multi[0][k], rel(single[0][k], multi[0][k])]
                    for k in single[0]},
            "evaluate": {k: [single[1][k], multi[1][k], rel(single[1][k], multi[1][k])]
                         for k in single[1]},
            "grad_max_abs_diff": grad_diff,
            "grad_max_abs": grad_scale,
            "grad_rel_diff": grad_diff / grad_scale,
        }), flush=True)

    print(json.dumps(reverse_statistics_check(mirrored, rng)), flush=True)


def reverse_statistics_check(mirrored, rng):
    """A model with reverse BatchNormalization: after one mirrored step the
    reverse moving statistics have moved, and both replicas hold the same."""
    with mirrored.scope():
        inputs = keras.Input((8, 8, 2))
        x = keras.layers.Conv2D(6, 3, padding="same")(inputs)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
        x = keras.layers.Conv2D(4, 3, padding="same")(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        outputs = keras.layers.Dense(CLASSES)(x)
        model = kr.ReversibleModel(inputs, outputs)
        model.compile(keras.optimizers.SGD(0.1),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = rng.uniform(size=(GLOBAL_BATCH, 8, 8, 2)).astype("float32")
    y = rng.integers(0, CLASSES, GLOBAL_BATCH)
    stats = model.reverse_statistics
    before = [v.numpy() for v in stats]
    model.fit(x, y, batch_size=GLOBAL_BATCH, epochs=1, verbose=0)
    per_replica = [[r.numpy() for r in v.value.values] for v in stats]
    return {
        "config": "reverse_statistics",
        "replicas": mirrored.num_replicas_in_sync,
        "variables": len(stats),
        "moved": [bool(np.any(v.numpy() != b)) for v, b in zip(stats, before)],
        "replicas_agree": all(np.array_equal(r[0], r[1]) for r in per_replica),
    }


if __name__ == "__main__":
    sys.exit(main())
