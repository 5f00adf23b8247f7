r"""Multi-worker training of a zoo model with ``MultiWorkerMirroredStrategy``.

Every worker runs this same script; ``TF_CONFIG`` (JSON in the environment)
tells it the cluster and its own index. Without ``TF_CONFIG`` it trains as a
single worker. ``--local_workers=N`` starts N workers on 127.0.0.1 (free
ports) and waits for them: a cluster on one machine, to try it out.

The global batch (``--global_batch_size``) is split over the workers: each
step, every worker computes the loss terms on its share, the gradients are
all-reduced (summed) and every worker applies the same update, so all
workers hold the same weights. ``keras.callbacks.BackupAndRestore`` backs up
the weights, optimizer state and epoch counter at every epoch end (each
worker into its own folder ``<out>/backup/worker<i>``); a worker that is
killed and started again resumes at the start of the interrupted epoch, and
with a fixed data order (no shuffling, the default) reaches the same
weights as an uninterrupted run.

It writes, under ``--out``:

* ``worker<i>/weights.npz`` and ``worker<i>/result.json``: the final weights
  of worker ``i``, the metrics per epoch, a weight digest, the command and
  library versions;
* ``results.json`` (``--local_workers`` only): the workers' results merged,
  and the largest weight difference between workers.

Usage:

    python examples/multi_worker.py --local_workers=2 --out=runs/multi_worker
    # on a cluster: one process per host, each with its own TF_CONFIG, e.g. host 0:
    TF_CONFIG='{"cluster": {"worker": ["host0:12345", "host1:12345"]},
                "task": {"type": "worker", "index": 0}}' \
        python examples/multi_worker.py --out=/shared/runs/mw
"""

import hashlib
import json
import os
import socket
import subprocess
import sys
import time

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import zoo  # noqa: E402
from keras_reversible import data, files  # noqa: E402
from common import experiment  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("out", "runs/multi_worker", "Output folder (shared by the workers).")
flags.DEFINE_string("model", "racecar_mnist_cnn", "Zoo model taking 28×28×1 MNIST images.")
flags.DEFINE_integer("epochs", 3, "Epochs.")
flags.DEFINE_integer("global_batch_size", 64, "Examples per step over all workers.")
flags.DEFINE_integer("train_examples", 6400, "First N MNIST training images (0: all 60,000).")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
flags.DEFINE_integer("seed", 0, "Seed of the initial weights (the same on every worker).")
flags.DEFINE_boolean("shuffle", False, "Shuffle each epoch (resumes are then not exact).")
flags.DEFINE_boolean("backup", True, "keras.callbacks.BackupAndRestore at every epoch end.")
flags.DEFINE_integer("log_every", 20, "Print a progress line every N steps.")
flags.DEFINE_integer("local_workers", 0, "Start this many workers on 127.0.0.1 and wait.")
flags.DEFINE_integer("timeout", 1800, "--local_workers: seconds before the workers are killed.")


def free_ports(n):
    """``n`` distinct free TCP ports on 127.0.0.1 (bound to port 0, then released)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def tf_config(ports, index):
    """The ``TF_CONFIG`` of worker ``index`` of a localhost cluster."""
    return json.dumps({
        "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
        "task": {"type": "worker", "index": index},
    })


def launch_local(n, argv, timeout):
    """Runs this script as ``n`` workers on 127.0.0.1; kills them all on failure."""
    ports = free_ports(n)
    args = [a for a in argv[1:] if not a.startswith("--local_workers")]
    procs = []
    try:
        for i in range(n):
            env = {**os.environ, "TF_CONFIG": tf_config(ports, i)}
            procs.append(subprocess.Popen([sys.executable, os.path.abspath(argv[0]), *args], env=env))
        deadline = time.time() + timeout
        # A failed worker leaves the others waiting in a collective: stop at the first failure.
        while any(p.poll() is None for p in procs) and time.time() < deadline:
            if any(p.returncode for p in procs):
                break
            time.sleep(0.5)
        codes = [p.poll() for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    if any(code != 0 for code in codes):
        raise SystemExit(f"workers exited with {codes} (None: killed after the failure or timeout)")
    results = summarize(n)
    print(f"{n} local workers finished: weights {results['weights_digests']}, largest "
          f"difference {results['weights_max_abs_diff_between_workers']:.3g}; "
          f"wrote {FLAGS.out}/results.json", flush=True)


def weights_digest(weights):
    h = hashlib.sha256()
    for w in weights:
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()[:16]


def work_around_keras_20585(model, strategy, batch):
    """Two workarounds for keras-team/keras#20585 (still in Keras 3.15).

    With more than one worker, ``fit`` under ``MultiWorkerMirroredStrategy``

    1. first all-reduces a distributed ``(x, y)`` batch to build the metrics
       and the optimizer (``_maybe_symbolic_build``), and TensorFlow cannot
       reduce a tuple across workers (``ValueError: Attempt to convert a value
       (PerReplica ...)``). The build needs only shapes: it is done here from
       one local batch and the failing step is skipped;
    2. reduces every logged metric with ``strategy.reduce("MEAN", v, axis=0)``,
       which fails on scalars. Each metric is returned with shape ``(1,)``
       instead, so that reduction is the mean over the workers: each worker
       reports the metric of its equal share of the global batch, and the
       model's loss terms are scaled so that this mean is the global value.
    """
    with strategy.scope():
        model._symbolic_build(data_batch=batch)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    train_step = model.train_step
    model.train_step = lambda data: {k: tf.reshape(v, [1]) for k, v in train_step(data).items()}


class StepProgress(keras.callbacks.Callback):
    """``worker i: epoch e step s loss=...`` every ``every`` steps, and at epoch ends."""

    def __init__(self, worker, every):
        super().__init__()
        self.worker, self.every, self.epoch = worker, every, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        print(f"worker {self.worker}: epoch {epoch + 1} begins", flush=True)

    def on_train_batch_end(self, batch, logs=None):
        if (batch + 1) % self.every == 0:
            print(f"worker {self.worker}: epoch {self.epoch + 1} step {batch + 1} "
                  f"loss={float(logs['loss']):.4g}", flush=True)

    def on_epoch_end(self, epoch, logs=None):
        parts = " ".join(f"{k}={v:.4g}" for k, v in sorted(logs.items()))
        print(f"worker {self.worker}: epoch {epoch + 1} done {parts}", flush=True)


def train():
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    resolver = strategy.cluster_resolver
    worker = resolver.task_id if resolver and resolver.task_type else 0
    workers = strategy.num_replicas_in_sync  # one CPU replica per worker
    if FLAGS.global_batch_size % workers:
        raise ValueError(f"--global_batch_size={FLAGS.global_batch_size} is not divisible "
                         f"by the {workers} workers.")
    limit = FLAGS.train_examples or None
    ds = data.mnist_dataset("train", batch_size=FLAGS.global_batch_size, limit=limit,
                            shuffle=FLAGS.shuffle, seed=FLAGS.seed, drop_remainder=True)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    ds = ds.with_options(options)

    keras.utils.set_random_seed(FLAGS.seed)
    with strategy.scope():
        model = zoo.get(FLAGS.model)
        model.compile(keras.optimizers.Adam(FLAGS.learning_rate),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
    if workers > 1:
        work_around_keras_20585(model, strategy, next(iter(ds)))
    callbacks = [StepProgress(worker, FLAGS.log_every)]
    if FLAGS.backup:
        backup_dir = os.path.join(FLAGS.out, "backup", f"worker{worker}")
        callbacks.insert(0, keras.callbacks.BackupAndRestore(backup_dir, double_checkpoint=True))
    print(f"worker {worker}/{workers}: {FLAGS.model}, global batch {FLAGS.global_batch_size}, "
          f"{FLAGS.epochs} epochs -> {FLAGS.out}", flush=True)
    start = time.time()
    history = model.fit(ds, epochs=FLAGS.epochs, verbose=0, callbacks=callbacks)
    seconds = time.time() - start

    weights = [np.asarray(w) for w in model.get_weights()]
    out = os.path.join(FLAGS.out, f"worker{worker}")
    os.makedirs(out, exist_ok=True)
    with files.atomic_path(os.path.join(out, "weights.npz")) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, *weights)
    digest = weights_digest(weights)
    print(f"worker {worker}: done in {seconds:.0f}s, weights {digest}", flush=True)
    experiment.write_json(os.path.join(out, "result.json"), {
        **experiment.environment(),
        "worker": worker,
        "workers": workers,
        # Epochs this process ran: after a resume, only the remaining ones.
        "epochs_run": [e + 1 for e in history.epoch],
        # The global values (see work_around_keras_20585).
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "seconds": seconds,
        "weights_digest": digest,
    })


def summarize(n):
    """``results.json`` from the ``n`` workers' ``result.json`` files."""
    runs = [experiment.read_json(os.path.join(FLAGS.out, f"worker{i}", "result.json"))
            for i in range(n)]
    weights = [np.load(os.path.join(FLAGS.out, f"worker{i}", "weights.npz")) for i in range(n)]
    max_diff = max(float(np.max(np.abs(w[k] - weights[0][k])))
                   for w in weights[1:] for k in w.files) if n > 1 else 0.0
    results = {
        **experiment.environment(),
        "model": FLAGS.model,
        "workers": n,
        "global_batch_size": FLAGS.global_batch_size,
        "train_examples": FLAGS.train_examples or 60000,
        "seeds": [FLAGS.seed],
        "epochs": FLAGS.epochs,
        "epochs_run": runs[0]["epochs_run"],
        "history": runs[0]["history"],
        "weights_digests": [r["weights_digest"] for r in runs],
        "weights_max_abs_diff_between_workers": max_diff,
        "seconds": max(r["seconds"] for r in runs),
    }
    experiment.write_results(os.path.join(FLAGS.out, "results.json"), results)
    return results


def main(argv):
    del argv  # the flags are in FLAGS; launch_local re-uses sys.argv
    if FLAGS.local_workers:
        launch_local(FLAGS.local_workers, sys.argv, FLAGS.timeout)
    else:
        train()


if __name__ == "__main__":
    app.run(main)
