"""Pretrained weights of the zoo models: ``weights="<preset>"``, as in ``keras.applications``.

A zoo entry (``zoo.registry.ModelInfo``) lists its presets in ``presets``:
preset name → ``Preset``, the record of one trained model (its weight file in
the package's ``zoo/weights/``, the command that trained it, seed, epochs,
data, the measured test metric and the date). A constructor that offers
presets takes ``weights``:

* ``None`` (default): random initialisation;
* a preset name, e.g. ``zoo.racecar_mnist_cnn(weights="mnist")``: the file
  shipped with the package, checked against its recorded SHA-256;
* the path of a ``.weights.h5`` file (``model.save_weights``) of the same
  architecture.

The weight files are written by ``tools/train_presets.py --preset=<entry>/<preset>``
(with ``results.json``; ``docs/pretrained.md`` lists every preset). A
preset fixes the arguments that shape the weights (``Preset.arguments``:
``num_classes``, ``input_shape``, the CIFAR ResNet's ``depth``...); the
reversal settings stay free, so ``weights="mnist", depth=0`` starts a plain
model from the racecar-trained weights.

Example:

```python
import zoo
model = zoo.racecar_mi_net(weights="mi_task")
preset = zoo.info("racecar_mi_net").presets["mi_task"]
print(zoo.list_presets(), preset.metric, preset.value)
```
"""

import contextlib
import dataclasses
import hashlib
import os
import types
from importlib import resources

import numpy as np

# Folder of the weight files, inside the zoo package (package data).
WEIGHTS_FOLDER = "weights"
METRICS = ("test_accuracy",)

# The test sets a preset's metric can be measured on (``load_test_set``): key -> description.
TEST_DATA = {
    "mnist": "MNIST, the 10,000 test images in [0, 1] (keras_reversible.data.mnist_dataset, "
             "local files under $KERAS_REVERSIBLE_DATA/mnist)",
    "mi_sphere_A_seed0": "the 12-bit task A, the 819 test patterns of "
                         "keras_reversible.data.load_mi_sphere(seed=0) (in the package)",
    "cifar10": "CIFAR-10, the 10,000 test images divided by the channel means "
               "(keras_reversible.data.cifar_dataset, local files under "
               "$KERAS_REVERSIBLE_DATA/cifar10)",
}
# The ones inside the package; the others need the data folder.
PACKAGED_TEST_DATA = ("mi_sphere_A_seed0",)


@dataclasses.dataclass(frozen=True)
class Preset:
    """One preset of a zoo entry: a trained model's weight file and how it was made.

    Every value is copied from the ``results.json`` that
    ``tools/train_presets.py`` wrote beside the weight file.

    Attributes:
        file: the weight file's name in ``zoo/weights/``
            (``<entry>-<preset>.weights.h5``).
        sha256: the file's SHA-256, checked before loading.
        command: the command that trained it, run from the repository root.
        seed: the training seed (``keras.utils.set_random_seed``).
        epochs: training epochs.
        data: the training data, in words.
        test_data: the test set ``value`` was measured on: a key of
            ``TEST_DATA``.
        test_examples: the number of test examples it holds.
        metric: the metric's name (``"test_accuracy"``).
        value: the metric of the shipped file, measured on ``test_data``.
        date: when it was trained, ``YYYY-MM-DD``.
        train_seconds: the training's wall time.
        arguments: the constructor arguments the weights fit, e.g.
            ``{"num_classes": 10, "input_shape": (28, 28, 1)}``; another
            value raises ``ValueError``.
        reversal: the reversal settings it was trained with (a record: the
            caller's settings apply).
    """

    file: str
    sha256: str
    command: str
    seed: int
    epochs: int
    data: str
    test_data: str
    test_examples: int
    metric: str
    value: float
    date: str
    train_seconds: float
    arguments: dict = dataclasses.field(default_factory=dict)
    reversal: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.test_data not in TEST_DATA:
            raise ValueError(f"Preset {self.file}: test_data must be one of {list(TEST_DATA)}, "
                             f"got {self.test_data!r}.")
        if self.metric not in METRICS:
            raise ValueError(f"Preset {self.file}: metric must be one of {METRICS}, "
                             f"got {self.metric!r}.")
        if not self.file.endswith(".weights.h5") or os.path.basename(self.file) != self.file:
            raise ValueError(f"Preset file must be a .weights.h5 file name, got {self.file!r}.")
        arguments = {k: _normalised(v) for k, v in self.arguments.items()}
        object.__setattr__(self, "arguments", types.MappingProxyType(arguments))
        object.__setattr__(self, "reversal", types.MappingProxyType(dict(self.reversal)))


@dataclasses.dataclass(frozen=True)
class Source:
    """Weights ``resolve`` accepted: a file and, for a preset, its name and record."""

    path: object  # a path, or a Traversable inside the package for a preset
    preset_name: str = None
    preset: Preset = None

    def describe(self):
        """``"preset 'mnist' (<file>)"`` or ``"weights file <path>"``, for messages."""
        if self.preset is None:
            return f"weights file {os.fspath(self.path)}"
        return f"preset {self.preset_name!r} ({self.preset.file})"


def _normalised(value):
    if isinstance(value, (list, tuple)):
        return tuple(_normalised(v) for v in value)
    return value


def weights_file(preset):
    """The packaged weight file of ``preset`` (an ``importlib.resources`` Traversable)."""
    return resources.files("zoo") / WEIGHTS_FOLDER / preset.file


def sha256(path):
    """SHA-256 of a file (a path or a Traversable), as hex."""
    digest = hashlib.sha256()
    with (path.open("rb") if hasattr(path, "joinpath") else open(path, "rb")) as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _known(entry):
    return sorted(entry.presets) if entry.presets else "none (this model ships no weights yet)"


def resolve(entry, weights, **arguments):
    """Checks a constructor's ``weights`` argument before the model is built.

    Args:
        entry: the constructor's ``ModelInfo``.
        weights: None, a preset name of ``entry`` or the path of a
            ``.weights.h5`` file.
        **arguments: the constructor's values of the arguments that shape
            the weights; a preset's ``arguments`` must agree with them.

    Returns:
        A ``Source`` for ``load``, or None for ``weights=None``.

    Raises:
        ValueError: an unknown preset (the message lists the known ones, or
            says the entry has none), a missing file, or an argument that
            conflicts with the preset.
        TypeError: ``weights`` is not None, a string or a path.
    """
    if weights is None:
        return None
    where = f"{entry.name}(weights={weights!r})"
    if not isinstance(weights, (str, os.PathLike)):
        raise TypeError(f"{where}: weights must be None, a preset name (str) or the path of a "
                        f".weights.h5 file, got {type(weights).__name__}.")
    if isinstance(weights, str) and weights in entry.presets:
        preset = entry.presets[weights]
        for key, trained in preset.arguments.items():
            if key not in arguments:
                raise ValueError(f"{where}: the preset records the argument {key!r}, which "
                                 f"{entry.name} does not pass to resolve().")
            given = _normalised(arguments[key])
            if given != trained:
                raise ValueError(
                    f"{where}: the preset was trained with {key}={trained!r}, which conflicts "
                    f"with {key}={arguments[key]!r}; leave {key} at {trained!r} or pass "
                    f"weights=None.")
        return Source(weights_file(preset), weights, preset)
    path = os.fspath(weights)
    if isinstance(weights, str) and not path.endswith(".weights.h5"):
        raise ValueError(f"{where}: unknown weights; known presets of {entry.name}: "
                         f"{_known(entry)}; or pass None or the path of a .weights.h5 file.")
    if not path.endswith(".weights.h5") or not os.path.isfile(path):
        raise ValueError(f"{where}: no such .weights.h5 file; weights must be None, a preset "
                         f"of {entry.name} ({_known(entry)}) or the path of an existing "
                         f".weights.h5 file.")
    return Source(path)


def load(model, source):
    """Loads ``source`` (from ``resolve``) into ``model``, entirely or not at all.

    A preset's file is checked against its recorded SHA-256 first. When
    Keras fails part-way (a file of another architecture: the layers before
    the mismatch would be loaded), every variable gets its value back before
    the error is raised.

    Args:
        model: the built model.
        source: a ``Source``, or None (``model`` is returned unchanged).

    Returns:
        ``model``.

    Raises:
        ValueError: the file does not fit ``model``, or a preset's file does
            not match its SHA-256 (damaged or replaced).
    """
    if source is None:
        return model
    packaged = source.preset is not None
    opened = resources.as_file(source.path) if packaged else contextlib.nullcontext(source.path)
    with opened as path:
        if source.preset is not None:
            if not os.path.isfile(path):
                raise ValueError(f"{model.name}: the {source.describe()} is missing from the "
                                 f"package ({path}); reinstall keras-reversible.")
            found = sha256(path)
            if found != source.preset.sha256:
                raise ValueError(f"{model.name}: the {source.describe()} has SHA-256 {found}, "
                                 f"not the recorded {source.preset.sha256}: the file is "
                                 "damaged or was replaced.")
        before = [np.array(v.numpy()) for v in model.weights]
        try:
            model.load_weights(path)
        except Exception as err:  # noqa: BLE001 (Keras raises several kinds)
            for variable, value in zip(model.weights, before):
                variable.assign(value)
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(f"{model.name}: could not load the {source.describe()} "
                             f"(the model is left as it was): {first}") from err
    return model


def load_test_set(key, batch_size=1000):
    """The test set ``key`` of ``TEST_DATA`` as a ``tf.data.Dataset`` of ``(x, y)``, unshuffled.

    MNIST and CIFAR-10 are read from local files only (``source="local"``:
    ``$KERAS_REVERSIBLE_DATA``), never downloaded.
    """
    from keras_reversible import data

    if key == "mnist":
        return data.mnist_dataset("test", batch_size=batch_size, shuffle=False, source="local")
    if key == "mi_sphere_A_seed0":
        return data.mi_sphere_dataset("test", batch_size=batch_size, seed=0, task="A",
                                      shuffle=False)
    if key == "cifar10":
        return data.cifar_dataset("cifar10", "test", batch_size=batch_size, source="local",
                                  shuffle=False, augment=False)
    raise ValueError(f"test data must be one of {list(TEST_DATA)}, got {key!r}.")


def evaluate(model, test_data, batch_size=1000):
    """The test accuracy of ``model`` on the test set ``test_data`` (a key of ``TEST_DATA``).

    How ``tools/train_presets.py`` measures a preset's ``value``.

    Returns:
        tuple: ``(accuracy, examples)``; the accuracy is the fraction of
        test examples whose arg-max output is the label.
    """
    correct = examples = 0
    for x, y in load_test_set(test_data, batch_size):
        predicted = np.argmax(model.predict_on_batch(x), axis=-1)
        correct += int(np.sum(predicted == np.asarray(y)))
        examples += len(predicted)
    return correct / max(examples, 1), examples
