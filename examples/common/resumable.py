"""Training runs that survive a kill: a per-epoch backup, an epoch log and a stop switch.

A run is named by a ``RunCache`` and a key. While it trains it keeps, under
``cache.dir``:

* ``<key>.backup/``: a ``keras.callbacks.BackupAndRestore`` backup written
  after every epoch (weights, optimizer state with its iteration count, hence
  the position in the learning-rate schedule, and the epoch), stamped with
  the run's settings: a backup written under other settings is discarded;
* ``<key>.epochs.json``: the metrics, times and learning rate of each epoch.

A killed study reruns the same command and continues after the last finished
epoch. ``finish`` caches the run's result and only then removes its backup,
so a kill during the final evaluation restores the trained weights instead
of retraining.

Example:

```python
import keras, numpy as np, tempfile
from common import experiment, resumable

cache = experiment.RunCache(tempfile.mkdtemp(), {"epochs": 2})
start = resumable.start_epoch(cache, "demo", {"epochs": 2})  # 0: nothing backed up yet
model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
model.compile("sgd", "mse")
x, y = np.ones((8, 3)), np.ones((8, 1))
log = resumable.fit(model, (x, y), None, 2, cache, "demo", {"epochs": 2},
                    label="demo", start=start)
resumable.finish(cache, "demo", {"loss": log["epochs"][2]["loss"]})
assert sorted(log["epochs"]) == [1, 2] and log["sessions"] == 1
```
"""

import json
import os
import shutil
import time

import keras
import numpy as np

from common import experiment

EXIT_STOPPED = 3  # the exit code of a run ended by --stop_after_epochs


def warmup_schedule(peak, steps_per_epoch, epochs, warmup_epochs=1.0, kind="cosine"):
    """Linear warm-up to ``peak``, then cosine to 0 (or ÷10 at 50 % and 75 %) by the last step.

    Args:
        peak: the learning rate after the warm-up.
        steps_per_epoch, epochs: the run's length.
        warmup_epochs: the warm-up's length in epochs (0: none).
        kind: ``"cosine"`` or ``"step"`` (He et al. 2016's schedule).

    Returns:
        A ``keras.optimizers.schedules.LearningRateSchedule``.
    """
    total = steps_per_epoch * epochs
    warmup = min(int(round(warmup_epochs * steps_per_epoch)), total - 1)
    if kind == "cosine":
        if warmup <= 0:
            return keras.optimizers.schedules.CosineDecay(peak, total)
        return keras.optimizers.schedules.CosineDecay(
            0.0, total - warmup, warmup_target=peak, warmup_steps=warmup)
    if kind == "step":
        return WarmupStep(peak, warmup, [total // 2, (3 * total) // 4])
    raise ValueError(f"kind must be 'cosine' or 'step', got {kind!r}")


class WarmupStep(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``peak``, then ÷10 at each boundary (He et al.'s schedule)."""

    def __init__(self, peak, warmup, boundaries):
        self.peak, self.warmup, self.boundaries = float(peak), int(warmup), list(boundaries)
        self._step = keras.optimizers.schedules.PiecewiseConstantDecay(
            self.boundaries, [self.peak / 10 ** i for i in range(len(self.boundaries) + 1)])

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        rate = self._step(step)
        if self.warmup > 0:
            rate = keras.ops.where(step < self.warmup, self.peak * step / self.warmup, rate)
        return rate

    def get_config(self):
        return {"peak": self.peak, "warmup": self.warmup, "boundaries": self.boundaries}


class EpochLog(keras.callbacks.Callback):
    """Per-epoch metrics and times, written to ``path`` after every epoch (atomically).

    Entries are keyed by epoch, so an epoch retrained after a kill replaces
    its entry; ``sessions`` counts the invocations that trained the run, each
    entry names its ``session``, and ``machines`` maps a session to the
    machine it ran on (epoch times are only comparable on one machine).
    """

    def __init__(self, path, settings, label, epochs):
        super().__init__()
        self.path, self.label, self.epochs = path, label, epochs
        self.log = {"settings": settings, "sessions": 0, "epochs": {}}
        if os.path.exists(path):
            saved = experiment.read_json(path)
            if saved.get("settings") == settings:
                self.log = saved
        self.log["sessions"] += 1
        self.log.setdefault("machines", {})[str(self.log["sessions"])] = experiment.machine()
        self._start = self._train_end = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._train_end = time.time(), None

    def on_test_begin(self, logs=None):
        if self._start is not None and self._train_end is None:
            self._train_end = time.time()

    def on_epoch_end(self, epoch, logs=None):
        now = time.time()
        entry = {k: float(v) for k, v in (logs or {}).items()}
        entry["seconds"] = now - self._start
        entry["train_seconds"] = (self._train_end or now) - self._start
        entry["learning_rate"] = float(keras.ops.convert_to_numpy(
            self.model.optimizer.learning_rate))
        entry["session"] = self.log["sessions"]
        self.log["epochs"][str(epoch + 1)] = entry
        experiment.write_json(self.path, self.log)
        shown = [f"{label} {entry[key]:.4f}" for key, label in (
            ("loss", "loss"), ("accuracy", "accuracy"), ("val_accuracy", "test accuracy"))
            if key in entry]
        print(f"  {self.label}: epoch {epoch + 1}/{self.epochs} {entry['seconds']:.0f}s, "
              + ", ".join(shown), flush=True)


class StopAfter(keras.callbacks.Callback):
    """Ends the process, as abruptly as a kill, after ``n`` epochs of this invocation.

    The epochs are counted over every run of the process (a class-wide
    count). It must come after the backup in the callback list, so the epoch
    it ends on is backed up.
    """

    epochs_this_process = 0

    def __init__(self, n):
        super().__init__()
        self.n = n

    def on_epoch_end(self, epoch, logs=None):
        StopAfter.epochs_this_process += 1
        if StopAfter.epochs_this_process >= self.n:
            print(f"  --stop_after_epochs={self.n}: exiting after epoch {epoch + 1}; "
                  "rerun the same command to continue", flush=True)
            os._exit(EXIT_STOPPED)


def backup_dir(cache, key, settings):
    """``<cache.dir>/<key>.backup``, emptied when it was written under other settings."""
    folder = os.path.join(cache.dir, f"{key}.backup")
    stamp = os.path.join(folder, "settings.json")
    if os.path.isdir(folder):
        same = os.path.exists(stamp) and experiment.read_json(stamp) == settings
        if not same:
            shutil.rmtree(folder)
    if not os.path.isdir(folder):
        experiment.write_json(stamp, settings)
    return folder


def resumed_epoch(folder):
    """The last epoch the backup in ``folder`` holds (0: none)."""
    path = os.path.join(folder, "training_metadata.json")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return int(json.load(f)["epoch"])


def start_epoch(cache, key, settings):
    """The epoch run ``key`` resumes after (0: a fresh start); stale backups are discarded."""
    return resumed_epoch(backup_dir(cache, key, settings))


def fit(model, train, test, epochs, cache, key, settings, *, label, start,
        validation_freq=1, stop_after=None, callbacks=(), verbose=True):
    """Trains ``model`` (compiled) for ``epochs`` in all, resuming after epoch ``start``.

    Args:
        model: the compiled model, freshly built: the backup restores its
            weights and optimizer state.
        train: the training data (a dataset drawn for this invocation: seed
            it with ``start`` so a resumed run does not replay its first
            epochs' crops and order).
        test: validation data, or None.
        epochs: the run's total epochs.
        cache, key, settings: the run (see the module docstring).
        label: how progress lines name the run.
        start: ``start_epoch(cache, key, settings)``, taken before the
            datasets were drawn.
        validation_freq: as for ``model.fit``.
        stop_after: end the process after this many epochs of this
            invocation (``StopAfter``), or None.
        callbacks: more callbacks, called before the backup of each epoch.
        verbose: print when the run resumes or was trained before.

    Returns:
        dict: ``"epochs"``, epoch (1-based int) → that epoch's log entry for
        every epoch of the run, including those of earlier invocations; and
        ``"sessions"``, the invocations that ran it, this one included.

    Raises:
        RuntimeError: no epoch was logged.
    """
    folder = backup_dir(cache, key, settings)
    if verbose and start >= epochs:
        print(f"  {label}: trained before; restoring its weights to test", flush=True)
    elif verbose and start:
        print(f"  {label}: resuming after epoch {start}/{epochs}", flush=True)
    log_path = os.path.join(cache.dir, f"{key}.epochs.json")
    log = EpochLog(log_path, settings, label, epochs)
    # The backup outlives fit (``finish`` removes it once the result is cached).
    callbacks = [log, *callbacks,
                 keras.callbacks.BackupAndRestore(folder, double_checkpoint=True,
                                                  delete_checkpoint=False),
                 keras.callbacks.TerminateOnNaN()]
    if stop_after:
        callbacks.append(StopAfter(stop_after))
    x, y = train if isinstance(train, tuple) else (train, None)
    model.fit(x, y, epochs=epochs, validation_data=test,
              validation_freq=validation_freq if test is not None else 1, verbose=0,
              callbacks=callbacks, shuffle=False)  # the dataset shuffles itself
    if not os.path.exists(log_path):
        raise RuntimeError(f"{key}: no epoch was logged")
    return {"epochs": {int(k): v for k, v in log.log["epochs"].items()},
            "sessions": log.log["sessions"]}


def finish(cache, key, result):
    """Caches the finished run's ``result``, then removes its backup."""
    cache.put(key, result)
    shutil.rmtree(os.path.join(cache.dir, f"{key}.backup"), ignore_errors=True)


COLLAPSE_EPOCHS = 5  # a collapse: this many last epochs at chance (RR20_A at λ = 1: 28 of 30)


def stop_if_failed(model, epochs, cache, key, label, remedy, chance=None):
    """Ends the study when run ``key`` diverged or collapsed; else returns.

    Diverged: a NaN loss or weight. Collapsed (with ``chance`` given): the
    training accuracy of each of the last ``COLLAPSE_EPOCHS`` epochs at most
    1.1 × ``chance``, as when a reconstruction loss drives every layer's
    output to 0. Either way every run built on it would be meaningless. Its
    backup is removed, so that a rerun (with other settings, ``remedy``)
    starts it afresh; its epoch log is kept as
    ``<key>.diverged.epochs.json`` or ``<key>.collapsed.epochs.json``.

    Args:
        model: the trained model.
        epochs: ``fit(...)["epochs"]``.
        cache, key: the run.
        label: how the message names the run.
        remedy: what the message suggests, e.g. the flags to change.
        chance: the accuracy of guessing (1 / classes), or None: no collapse check.

    Raises:
        SystemExit: it diverged or collapsed.
    """
    last = max(epochs)
    diverged = not (np.isfinite(epochs[last]["loss"]) and all(  # the last step may be the NaN one
        np.isfinite(w).all() for w in model.get_weights()))
    tail = [epochs[e].get("accuracy") for e in sorted(epochs)[-COLLAPSE_EPOCHS:]]
    collapsed = (chance is not None and len(tail) == COLLAPSE_EPOCHS
                 and all(a is not None and a <= 1.1 * chance for a in tail))
    if not (diverged or collapsed):
        return
    kind = "diverged" if diverged else "collapsed"
    shutil.rmtree(os.path.join(cache.dir, f"{key}.backup"), ignore_errors=True)
    log = os.path.join(cache.dir, f"{key}.epochs.json")
    if os.path.exists(log):
        os.replace(log, os.path.join(cache.dir, f"{key}.{kind}.epochs.json"))
    what = (f"the loss diverged to NaN in epoch {last}" if diverged else
            f"it collapsed: training accuracy {min(tail):.3f}-{max(tail):.3f} in epochs "
            f"{last - COLLAPSE_EPOCHS + 1}-{last}, chance {chance:.3f}")
    raise SystemExit(f"{label}: {what} (log: {key}.{kind}.epochs.json); the study stops, its "
                     f"finished runs stay cached. {remedy}")


def define_flags(runs):
    """Defines the two flags of a study that spans sessions.

    ``--stop_after_epochs`` (>= 1, checked by absl when the flags are parsed)
    ends the process after that many backed-up epochs; ``--report_only``
    trains nothing and reports what has finished.

    Args:
        runs: what one report needs finished, in words (``"the ten runs of a
            seed"``), for the help text.
    """
    from absl import flags

    flags.DEFINE_integer("stop_after_epochs", None,
                         f"Exit (code {EXIT_STOPPED}, as abruptly as a kill) after this many "
                         "epochs trained by this invocation, each backed up: rerun to continue.",
                         lower_bound=1)
    flags.DEFINE_boolean("report_only", False,
                         "Train nothing: write results.json and the figures from what has "
                         f"finished ({runs}); complete: false while any run is missing.")


def finished_seeds(cache, seeds, names, cache_of=None):
    """What ``--report_only`` reports: the seeds whose runs of every model have finished.

    Args:
        cache: the study's ``RunCache``; a run is ``"<name>-seed<seed>"``.
            With ``cache_of``, a mapping of ``RunCache``s instead.
        seeds: the study's seeds.
        names: the model names one seed trains.
        cache_of: where models depend on different settings, a function of
            a model name returning its key in ``cache``.

    Returns:
        ``(results, finished, missing)``: ``{name: [result per finished
        seed]}``, the finished seeds, and the keys of the runs not finished
        yet (of the other seeds, which are left out).
    """
    results, finished, missing = {name: [] for name in names}, [], []
    for seed in seeds:
        runs = {name: (cache[cache_of(name)] if cache_of else cache).get(f"{name}-seed{seed}")
                for name in names}
        absent = [f"{name}-seed{seed}" for name, run in runs.items() if run is None]
        if absent:
            print(f"  seed {seed}: {len(absent)} of {len(names)} runs not finished yet "
                  "(--report_only: skipped)", flush=True)
            missing += absent
            continue
        finished.append(seed)
        for name, run in runs.items():
            results[name].append(run)
    return results, finished, missing
