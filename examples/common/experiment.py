"""Plumbing shared by the example scripts: results, resumable runs, progress.

Every example writes ``results.json`` (its numbers, the command, seeds,
epochs, library versions) and PNGs under one output folder. Files are written
atomically (``keras_reversible.files.atomic_path``: temporary file, then
rename), so an interrupted run never leaves a half-written file; finished
runs are cached so a killed study resumes from its last finished model.

Not part of the installed library: the scripts import it from beside
themselves (``from common import experiment``); the benchmark scripts use its
``results.json`` helpers too.
"""

import json
import os
import platform
import shlex
import sys
import time
import warnings

import keras
import numpy as np

from keras_reversible import files
from keras_reversible.files import atomic_path


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def write_json(path, data):
    """Writes ``data`` (numpy values allowed) as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(_jsonable(data), f, indent=2, sort_keys=False)
            f.write("\n")


def write_results(path, results):
    """Writes a study's ``results.json`` (``write_json``), unless it already holds them.

    A rerun that trains nothing (every run cached) leaves the file as it
    was, its ``finished_at`` included, instead of stamping a new time on
    the same numbers.
    """
    fresh = _jsonable(results)
    if os.path.exists(path):
        try:
            old = read_json(path)
        except (OSError, ValueError):
            old = None
        if isinstance(old, dict) and {**old, "finished_at": None} == {**fresh, "finished_at": None}:
            return
    write_json(path, fresh)


def read_json(path):
    with open(path) as f:
        return json.load(f)


def _cpu_model():
    """The processor's name (Linux: ``/proc/cpuinfo``), or ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown processor"


def machine():
    """``"x86_64 (AMD EPYC), 2 CPU cores, 0 GPUs"``: wall times differ between machines."""
    import tensorflow as tf

    return (f"{platform.machine()} ({_cpu_model()}), {os.cpu_count()} CPU cores, "
            f"{len(tf.config.list_physical_devices('GPU'))} GPUs")


def environment():
    """Command line, library versions and machine, for ``results.json``."""
    import tensorflow as tf

    import keras_reversible

    return {
        "command": " ".join(shlex.quote(a) for a in [os.path.basename(sys.executable), *sys.argv]),
        "versions": {
            "keras_reversible": keras_reversible.__version__,
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "machine": machine(),
        "finished_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _warn_corrupt(path, reason):
    warnings.warn(f"RunCache: ignoring the corrupt cache entry {path} ({reason}); "
                  "the run is done again.", stacklevel=3)


class RunCache:
    """One JSON file per finished run under ``<out>/runs/``: resumable studies.

    Example:

    ```python
    cache = RunCache("runs/mi")
    result = cache.get("std_a-seed0")
    if result is None:
        result = train(...)
        cache.put("std_a-seed0", result)
    ```
    """

    def __init__(self, out_dir, settings=None):
        self.dir = os.path.join(out_dir, "runs")
        self.settings = _jsonable(settings or {})

    def _path(self, key):
        return os.path.join(self.dir, f"{key}.json")

    def get(self, key):
        """The cached result of ``key``, or None (also when settings changed).

        A corrupt entry (not JSON, truncated, not ``{"settings", "result"}``)
        is a cache miss, with a warning that names the file.
        """
        path = self._path(key)
        if not os.path.exists(path):
            return None
        try:
            entry = read_json(path)
        except (OSError, ValueError) as err:  # JSONDecodeError, UnicodeDecodeError
            _warn_corrupt(path, err)
            return None
        if not isinstance(entry, dict) or "result" not in entry:
            _warn_corrupt(path, f"expected an object with 'settings' and 'result', "
                                f"got {type(entry).__name__}")
            return None
        if entry.get("settings") != self.settings:
            return None
        return entry["result"]

    def put(self, key, result):
        write_json(self._path(key), {"settings": self.settings, "result": result})

    def model_path(self, key):
        return os.path.join(self.dir, f"{key}.keras")

    def put_weights(self, key, model):
        """Stores ``model.get_weights()`` under ``key`` (``.weights.npz``), atomically."""
        with atomic_path(os.path.join(self.dir, f"{key}.weights.npz")) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, *model.get_weights())

    def restore(self, key, model):
        """The cached result of ``key`` with its weights loaded into ``model``.

        Prints ``"  <key>: cached"`` when it finds both; returns None (and
        leaves ``model`` untouched) otherwise.
        """
        run = self.get(key)
        if run is None or not self.get_weights(key, model):
            return None
        print(f"  {key}: cached", flush=True)
        return run

    def get_weights(self, key, model):
        """Loads the weights stored under ``key`` into ``model``.

        Returns:
            bool: False (``model`` untouched) when nothing is stored, the
            settings changed (the weights are valid only beside the result
            stored with ``put`` under the same key), or the file is corrupt
            or does not fit ``model`` (with a warning naming it).
        """
        path = os.path.join(self.dir, f"{key}.weights.npz")
        if self.get(key) is None or not os.path.exists(path):
            return False
        try:
            with np.load(path) as f:
                weights = [f[f"arr_{i}"] for i in range(len(f.files))]
        except Exception as err:  # noqa: BLE001 (BadZipFile, EOFError, zlib.error, ...)
            _warn_corrupt(path, err)
            return False
        expected = [tuple(w.shape) for w in model.weights]
        if [w.shape for w in weights] != expected:
            _warn_corrupt(path, f"{len(weights)} arrays of shapes {[w.shape for w in weights]} "
                                f"for model '{model.name}', which has {len(expected)} "
                                f"weights of shapes {expected}")
            return False
        model.set_weights(weights)
        return True


class EpochProgress(keras.callbacks.Callback):
    """Prints one line every ``every`` epochs with every logged metric.

    Args:
        label: prefix of each line (e.g. the model name).
        every: print period in epochs.
        total: total epochs, for the ``epoch k/total`` counter.
    """

    def __init__(self, label, every, total):
        super().__init__()
        self.label, self.every, self.total = label, max(1, int(every)), total
        self.start = None

    def on_train_begin(self, logs=None):
        self.start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        done = epoch + 1
        if done % self.every and done != self.total:
            return
        parts = " ".join(f"{k}={v:.4g}" for k, v in sorted((logs or {}).items()))
        print(f"  {self.label}: epoch {done}/{self.total} "
              f"({time.time() - self.start:.0f}s) {parts}", flush=True)


def pyplot():
    """``matplotlib.pyplot`` on the headless Agg backend (imported on first use: an extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, **savefig_kwargs):
    """Writes a matplotlib figure as PNG atomically and closes it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", **{"dpi": 100, **savefig_kwargs})
    plt.close(fig)


def accuracy_summary(runs, paper=None):
    """Mean ± std of ``run["test_accuracy"]`` over seeds, beside the paper's.

    Args:
        runs: list of run results (one per seed), each with ``test_accuracy``
            and ``seconds``.
        paper: ``(mean, std)`` reported by the paper, or None.

    Returns:
        dict with ``test_accuracy`` (per seed), ``test_accuracy_mean``,
        ``test_accuracy_std``, ``paper_mean_std`` and ``seconds_per_run``.
    """
    acc = [r["test_accuracy"] for r in runs]
    return {
        "test_accuracy": acc,
        "test_accuracy_mean": float(np.mean(acc)),
        "test_accuracy_std": float(np.std(acc)),
        "paper_mean_std": paper,
        "seconds_per_run": [r["seconds"] for r in runs],
    }


def accuracy_table(title, names, summary, seeds, digits=3):
    """The papers' accuracy-table layout as text: a row per seed, Avg., Std. Dev., paper.

    Args:
        title: first line.
        names: column (model) names.
        summary: ``{name: accuracy_summary(...)}``.
        seeds: the seeds, in the order of each summary's runs.
        digits: decimals.
    """
    width = max(9, digits + 5, *(len(n) + 2 for n in names))
    cell = lambda v: f"{v:>{width}.{digits}f}"  # noqa: E731
    lines = [title, "  run        " + "".join(f"{n:>{width}}" for n in names)]
    for i, seed in enumerate(seeds):
        lines.append(f"  seed {seed:<5} " + "".join(cell(summary[n]["test_accuracy"][i])
                                                  for n in names))
    lines.append("  Avg.       " + "".join(cell(summary[n]["test_accuracy_mean"]) for n in names))
    lines.append("  Std. Dev.  " + "".join(cell(summary[n]["test_accuracy_std"]) for n in names))
    if all(summary[n]["paper_mean_std"] for n in names):
        lines.append("  paper Avg. " + "".join(cell(summary[n]["paper_mean_std"][0]) for n in names))
        lines.append("  paper Std. " + "".join(cell(summary[n]["paper_mean_std"][1]) for n in names))
    return "\n".join(lines)


def save_model(model, path, weights_only=False):
    """``model.save(path)`` (or ``save_weights``) without a half-written file.

    Keras picks the format from the suffix (``.keras``, ``.weights.h5``), so
    ``atomic_path``'s temporary name cannot be used; the model is written in a
    temporary folder next to ``path`` and renamed there
    (``keras_reversible.files.atomic_write``).

    Example:

    ```python
    save_model(model, cache.model_path("std_a-seed0"))
    ```
    """
    files.atomic_write(path, model.save_weights if weights_only else model.save)


def resolve_preset(preset, flag_values):
    """A preset's settings, each replaced by the flag of the same name when that was given.

    Args:
        preset: dict of settings, e.g. ``{"epochs": 2000, "seeds": [0]}``.
        flag_values: ``absl.flags.FLAGS`` (or any object with those
            attributes); a value of None means "not given". ``seeds`` given
            as a list of strings becomes a list of ints.

    Returns:
        dict with the preset's keys.
    """
    settings = dict(preset)
    for key in settings:
        value = getattr(flag_values, key)
        if value is not None:
            settings[key] = [int(v) for v in value] if key == "seeds" else value
    return settings
