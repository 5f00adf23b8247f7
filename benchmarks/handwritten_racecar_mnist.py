r"""Racecar training of the MNIST CNN (racecar table 9) written by hand, timed against the library.

``HandwrittenRacecarCNN`` is plain TensorFlow written from the paper, the way
the official code does it: explicit variables, ``tf.nn.conv2d`` forward,
``tf.nn.conv2d_transpose`` reverse with the same kernels, ``tf.GradientTape``
and a ``tf.function`` step. Racecar table 9::

    I(28,28,1) → relu(C1+b1) → MP → relu(C2+b2) → MP → relu(C3+b3) = I_r → FC(10)
    L'3 = relu(C3ᵀ(I_r − b3))        vs L3 = MP(relu(C2 L2 + b2))
    L'2 = relu(C2ᵀ(UP(L'3) − b2))    vs L2 = MP(relu(C1 I + b1))
    L'1 = relu(C1ᵀ(UP(L'2) − b1))    vs L1 = I
    loss = CE(FC(I_r), y) + λ Σ_m l2_loss(L'_m − L_m)      (λ = 1e-5, table 10)

The script trains it and ``zoo.racecar_mnist_cnn`` (a ``kr.ReversibleModel``
whose reverse pass is derived from the graph) on the same MNIST batches from
the same weights, with the same plain SGD update, step by step in turns
(a hand-written step after each library step inside ``fit``), and reports
the median time per step of each, and of both with λ off
(standard training: the hand-written step without the reverse pass, a
plain ``keras.Model`` over the same layers). ``library ÷ hand-written`` is the
cost of deriving the reverse pass automatically (and of Keras's ``fit``).

It writes ``results.json`` under ``--out``.

Usage:

    python benchmarks/handwritten_racecar_mnist.py --out=runs/handwritten
    python benchmarks/handwritten_racecar_mnist.py --preset=ci --out=/tmp/hw   # seconds
"""

import os
import statistics
import sys
import time

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# results.json and the environment record come from the examples' plumbing (examples/common).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples"))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

PRESETS = {
    # steps per epoch, timed epochs per implementation pair, rounds without fit()
    "cpu": dict(steps=20, epochs=10, direct_repeats=100),
    "ci": dict(steps=3, epochs=2, direct_repeats=2),
}

FLAGS = flags.FLAGS
flags.DEFINE_string("out", "runs/handwritten", "Output folder.")
flags.DEFINE_enum("preset", "cpu", list(PRESETS), "Steps and epochs preset.")
flags.DEFINE_integer("steps", None, "Steps (batches) per epoch (overrides the preset).")
flags.DEFINE_integer("epochs", None, "Timed epochs per variant (overrides the preset).")
flags.DEFINE_integer("batch_size", 64, "Batch size (racecar table 10: 64).")
flags.DEFINE_float("racecar_weight", 1e-5, "λ for the three layers (racecar table 10: 1e-5).")
flags.DEFINE_float("learning_rate", 1e-3, "SGD learning rate of both implementations.")
flags.DEFINE_integer("seed", 0, "Seed of the initial weights.")


def _glorot(shape, fan_in, fan_out, rng):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape).astype(np.float32)


class HandwrittenRacecarCNN(tf.Module):
    """Racecar table 9's CNN with its reverse pass, by hand.

    Args:
        racecar_weight: λ of each of the three layers (0: standard training,
            the reverse pass is not run).
        learning_rate: plain SGD step size.
        seed: initial weights (Glorot uniform, zero biases).

    Example:

    ```python
    net = HandwrittenRacecarCNN()
    x = tf.random.uniform([8, 28, 28, 1])
    task, racecar = net.train_step(x, tf.zeros([8], tf.int32))
    ```
    """

    def __init__(self, racecar_weight=1e-5, learning_rate=1e-3, seed=0):
        super().__init__(name="handwritten_racecar_cnn")
        rng = np.random.default_rng(seed)
        self.lam = racecar_weight
        self.lr = learning_rate
        self.w1 = tf.Variable(_glorot([3, 3, 1, 64], 9, 9 * 64, rng), name="w1")
        self.b1 = tf.Variable(tf.zeros([64]), name="b1")
        self.w2 = tf.Variable(_glorot([3, 3, 64, 64], 9 * 64, 9 * 64, rng), name="w2")
        self.b2 = tf.Variable(tf.zeros([64]), name="b2")
        self.w3 = tf.Variable(_glorot([3, 3, 64, 1], 9 * 64, 9, rng), name="w3")
        self.b3 = tf.Variable(tf.zeros([1]), name="b3")
        self.w4 = tf.Variable(_glorot([49, 10], 49, 10, rng), name="w4")
        self.b4 = tf.Variable(tf.zeros([10]), name="b4")
        self.params = [self.w1, self.b1, self.w2, self.b2, self.w3, self.b3, self.w4, self.b4]

    def set_from(self, model):
        """Copies the weights of ``zoo.racecar_mnist_cnn`` (conv1..3, fc)."""
        for var, layer, attr in zip(
            self.params,
            ["conv1", "conv1", "conv2", "conv2", "conv3", "conv3", "fc", "fc"],
            ["kernel", "bias"] * 4,
        ):
            var.assign(getattr(model.get_layer(layer), attr))

    def forward(self, x):
        """Logits, the constrained points [L1, L2, L3] and I_r."""
        def conv(v, w, b):
            return tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(v, w, 1, "SAME"), b))

        def pool(v):
            return tf.nn.max_pool2d(v, 2, 2, "VALID")

        l1 = x
        l2 = pool(conv(l1, self.w1, self.b1))
        l3 = pool(conv(l2, self.w2, self.b2))
        i_r = conv(l3, self.w3, self.b3)
        logits = tf.matmul(tf.reshape(i_r, [-1, 49]), self.w4) + self.b4
        return logits, [l1, l2, l3], i_r

    def reverse(self, i_r):
        """[L'1, L'2, L'3]: transposed convolutions with the same kernels."""
        batch = tf.shape(i_r)[0]

        def conv_t(y, w, b, size, channels):
            return tf.nn.conv2d_transpose(y - b, w, [batch, size, size, channels], 1, "SAME")

        def up(v):  # the paper's UP: nearest ×2
            return tf.repeat(tf.repeat(v, 2, axis=1), 2, axis=2)

        r3 = tf.nn.relu(conv_t(i_r, self.w3, self.b3, 7, 64))
        r2 = tf.nn.relu(conv_t(up(r3), self.w2, self.b2, 14, 64))
        r1 = tf.nn.relu(conv_t(up(r2), self.w1, self.b1, 28, 1))
        return [r1, r2, r3]

    def losses(self, x, y):
        """(task loss, racecar loss) of a batch."""
        logits, points, i_r = self.forward(x)
        task = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        if not self.lam:
            return task, tf.constant(0.0)
        regen = self.reverse(i_r)
        racecar = self.lam * tf.add_n([tf.nn.l2_loss(r - p) for r, p in zip(regen, points)])
        return task, racecar

    @tf.function
    def train_step(self, x, y):
        """One SGD step; returns (task loss, racecar loss)."""
        with tf.GradientTape() as tape:
            task, racecar = self.losses(x, y)
            total = task + racecar
        grads = tape.gradient(total, self.params)
        for var, grad in zip(self.params, grads):
            var.assign_sub(self.lr * grad)
        return task, racecar


def mnist_batches(batch_size, steps):
    """The first ``batch_size · steps`` MNIST training images, as a dataset."""
    from keras_reversible import data

    x, y = data.load_mnist_arrays("train")
    n = batch_size * steps
    x = (x[:n, ..., None] / 255.0).astype(np.float32)
    y = y[:n].astype(np.int32)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size).cache().prefetch(2)


class _Interleave(keras.callbacks.Callback):
    """Times each library step inside ``fit`` and a hand-written step after it.

    The hand-written step gets the same batch (a second pass over the same
    unshuffled dataset), so the two alternate step by step and load from
    other processes hits both alike.
    """

    def __init__(self, hand_step, ds):
        super().__init__()
        self.hand_step, self.ds = hand_step, ds
        self.library, self.handwritten = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.batches = iter(self.ds)

    def on_train_batch_begin(self, batch, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.library.append(time.perf_counter() - self.start)
        x, y = next(self.batches)
        start = time.perf_counter()
        self.hand_step(x, y)
        self.handwritten.append(time.perf_counter() - start)


def main(argv):
    del argv
    import zoo
    import measure
    from common import experiment

    cfg = dict(PRESETS[FLAGS.preset])
    cfg.update({k: getattr(FLAGS, k) for k in ("steps", "epochs") if getattr(FLAGS, k) is not None})
    ds = mnist_batches(FLAGS.batch_size, cfg["steps"])
    list(ds)  # fill the cache
    lam = FLAGS.racecar_weight

    def pair(depth):
        """fit() of the library model with the hand-written step interleaved."""
        keras.utils.set_random_seed(FLAGS.seed)
        model = zoo.racecar_mnist_cnn(racecar_weight=lam, depth=depth)
        net = HandwrittenRacecarCNN(lam if depth else 0.0, FLAGS.learning_rate)
        net.set_from(model)
        if depth == 0:  # standard training: a plain keras.Model over the layers
            model = keras.Model(model.inputs, model.outputs)
        model.compile(keras.optimizers.SGD(FLAGS.learning_rate),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        timer = _Interleave(lambda x, y: float(net.train_step(x, y)[0]), ds)
        model.fit(ds, epochs=1, verbose=0, callbacks=[timer])  # warm-up: tracing
        timer.library.clear()
        timer.handwritten.clear()
        epoch = lambda: model.fit(ds, epochs=1, verbose=0, callbacks=[timer])  # noqa: E731
        return epoch, timer, model, net

    pairs = {"racecar": pair(3), "standard": pair(0)}
    for e in range(cfg["epochs"]):
        for name, (epoch, timer, _, _) in pairs.items():
            epoch()
            print(f"  epoch {e + 1}/{cfg['epochs']} {name}: library "
                  f"{statistics.median(timer.library[-cfg['steps']:]) * 1000:.1f} ms/step, "
                  f"hand-written {statistics.median(timer.handwritten[-cfg['steps']:]) * 1000:.1f}",
                  flush=True)
    ms = {}
    for name, (_, timer, _, _) in pairs.items():
        ms[f"library_{name}"] = statistics.median(timer.library) * 1000
        ms[f"handwritten_{name}"] = statistics.median(timer.handwritten) * 1000

    # The same steps without fit(): the library's compiled train function on one
    # batch against the hand-written tf.function, in turns.
    x, y = next(iter(ds))
    steps = {}
    for name, (_, _, model, net) in pairs.items():
        iterator = iter(tf.data.Dataset.from_tensors((x, y)).repeat())
        steps[f"library_{name}"] = (lambda f=model.train_function, i=iterator: float(f(i)["loss"]))
        steps[f"handwritten_{name}"] = (lambda n=net: float(n.train_step(x, y)[0]))
    medians = measure.interleaved_medians(steps, warmup=2, repeats=cfg["direct_repeats"])
    direct = {k: v * 1000 for k, v in medians["wall"].items()}
    direct_cpu = {k: v * 1000 for k, v in medians["cpu"].items()}
    ratios = {
        "library_over_handwritten_racecar": ms["library_racecar"] / ms["handwritten_racecar"],
        "library_over_handwritten_standard": ms["library_standard"] / ms["handwritten_standard"],
        "racecar_over_standard_library": ms["library_racecar"] / ms["library_standard"],
        "racecar_over_standard_handwritten": ms["handwritten_racecar"] / ms["handwritten_standard"],
        "direct_library_over_handwritten_racecar":
            direct["library_racecar"] / direct["handwritten_racecar"],
        "direct_library_over_handwritten_standard":
            direct["library_standard"] / direct["handwritten_standard"],
        "direct_racecar_over_standard_library": direct["library_racecar"] / direct["library_standard"],
        "direct_racecar_over_standard_handwritten":
            direct["handwritten_racecar"] / direct["handwritten_standard"],
        "direct_cpu_library_over_handwritten_racecar":
            direct_cpu["library_racecar"] / direct_cpu["handwritten_racecar"],
        "direct_cpu_library_over_handwritten_standard":
            direct_cpu["library_standard"] / direct_cpu["handwritten_standard"],
        "direct_cpu_racecar_over_standard_library":
            direct_cpu["library_racecar"] / direct_cpu["library_standard"],
        "direct_cpu_racecar_over_standard_handwritten":
            direct_cpu["handwritten_racecar"] / direct_cpu["handwritten_standard"],
    }
    results = {
        **experiment.environment(),
        "preset": FLAGS.preset,
        "settings": {**cfg, "batch_size": FLAGS.batch_size, "racecar_weight": lam,
                     "learning_rate": FLAGS.learning_rate, "seed": FLAGS.seed},
        "method": (
            "same MNIST batches and initial weights; SGD in both; one warm-up epoch each; "
            "then epochs of fit() on the library model (racecar, then standard, in turns), "
            "each library step timed inside fit (on_train_batch_begin → end) and followed "
            "by the hand-written step on the same batch; medians over all steps. The "
            "racecar ÷ standard ratios compare steps of different epochs: step_time.py "
            "measures that one in finer turns. 'direct': the library's compiled train "
            "function (no fit loop) and the hand-written step on one batch, in turns "
            "(direct_repeats rounds, medians of wall and of process CPU time). Shared "
            "machine: read the ratios; CPU time barely feels other processes' load."
        ),
        "load_average": os.getloadavg(),
        "median_ms_per_step": ms,
        "median_ms_per_step_direct": direct,
        "median_cpu_ms_per_step_direct": direct_cpu,
        "ratios": ratios,
        "paper_racecar_over_standard": 5.675 / 3.522,
    }
    for k, v in ratios.items():
        print(f"{k}: {v:.3f}")
    os.makedirs(FLAGS.out, exist_ok=True)
    experiment.write_json(os.path.join(FLAGS.out, "results.json"), results)
    print(f"wrote {FLAGS.out}/results.json", flush=True)


if __name__ == "__main__":
    sys.exit(app.run(main))
