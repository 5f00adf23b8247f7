"""Mutual information of layer activations, by binning (information planes).

The estimator of Shwartz-Ziv & Tishby (2017), used by the racecar paper's
MI planes (section 4, figs. 2–4): each unit's activation is cut into
``num_bins`` equal bins over ``value_range``; a sample's binned activation
vector is one discrete symbol ``T``. For a deterministic network and
distinct inputs (the 12-bit task: every pattern once), ``H(T|X) = 0``, so

    I(X; T) = H(T)
    I(T; Y) = H(Y) − H(Y | T)

with the empirical distributions over the given samples, in bits.
"""

import keras
import numpy as np


def _entropy(counts):
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def bin_activations(activations, num_bins=30, value_range=(-1.0, 1.0)):
    """Integer symbols, one per sample, for binned activation vectors.

    Args:
        activations: ``(N, ...)`` array.
        num_bins: equal-width bins per unit (Shwartz-Ziv & Tishby: 30).
        value_range: ``(low, high)``; values outside are clipped into the
            first / last bin (tanh units: ``(-1, 1)``).

    Returns:
        ``(N,)`` int array; equal symbols mean equal binned vectors.
    """
    a = np.asarray(activations, dtype="float64").reshape(len(activations), -1)
    low, high = value_range
    if not high > low:
        raise ValueError(f"value_range must have high > low, got {value_range!r}.")
    if int(num_bins) < 1:
        raise ValueError(f"num_bins must be >= 1, got {num_bins!r}.")
    edges = np.linspace(low, high, int(num_bins) + 1)[1:-1]
    binned = np.digitize(a, edges)
    _, symbols = np.unique(binned, axis=0, return_inverse=True)
    return symbols.reshape(-1)


def mutual_information(activations, labels, num_bins=30, value_range=(-1.0, 1.0)):
    """``(I(X; T), I(T; Y))`` in bits for one layer's activations ``T``.

    Args:
        activations: ``(N, ...)`` activations of N distinct inputs.
        labels: ``(N,)`` integer labels ``Y``.
        num_bins: bins per unit.
        value_range: range of the activations.

    Returns:
        A pair of floats.

    Example:

    ```python
    from keras_reversible.information import mutual_information
    x = np.random.rand(100, 3)
    i_xt, i_ty = mutual_information(x, (x[:, 0] > 0.5).astype(int), value_range=(0, 1))
    ```
    """
    t = bin_activations(activations, num_bins, value_range)
    y = np.asarray(labels).reshape(-1)
    if len(y) != len(t):
        raise ValueError(f"{len(t)} activations but {len(y)} labels.")
    h_t = _entropy(np.bincount(t))
    _, y = np.unique(y, return_inverse=True)
    h_y = _entropy(np.bincount(y))
    joint = np.bincount(t * (y.max() + 1) + y)
    h_ty = _entropy(joint)
    return h_t, h_t + h_y - h_ty


def layer_probe(model, layer_names=None):
    """A model returning the outputs of ``layer_names`` (default: every weight layer).

    Returns:
        ``(probe, names)``: a functional ``keras.Model`` sharing ``model``'s
        layers, and the layer names it measures, in order.
    """
    if layer_names is None:
        layer_names = [layer.name for layer in model.layers if layer.weights]
    layer_names = list(layer_names)
    if not layer_names:
        raise ValueError(f"Model {model.name!r} has no layer with weights to measure.")
    outputs = [model.get_layer(name).output for name in layer_names]
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, outputs, name=f"{model.name}_probe"), layer_names


def _measure(probe, x, y, num_bins, value_range):
    outputs = probe(x, training=False)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return [mutual_information(keras.ops.convert_to_numpy(out), y, num_bins, value_range)
            for out in outputs]


def information_plane(model, x, y, layer_names=None, num_bins=30, value_range=(-1.0, 1.0)):
    """``[(name, I(X; L), I(L; Y)), ...]`` for layers of a functional model.

    Args:
        model: a functional Keras model.
        x: distinct inputs.
        y: labels.
        layer_names: layers whose outputs are measured; default every layer
            with weights, in order.
        num_bins: bins per unit.
        value_range: activation range (tanh: (-1, 1)).

    Returns:
        list of ``(layer name, I(X;L), I(L;Y))``.
    """
    probe, names = layer_probe(model, layer_names)
    return [(name, *mi) for name, mi in zip(names, _measure(probe, x, y, num_bins, value_range))]


class InformationPlane(keras.callbacks.Callback):
    """Records ``(I(X; L), I(L; Y))`` of every measured layer during ``fit``.

    The trajectories of the racecar paper's MI planes (figs. 2–4): measured
    before the first epoch (epoch 0) and every ``every`` epochs, on ``x``
    (distinct inputs, e.g. all 4,096 patterns of the 12-bit task) with labels
    ``y``. ``history`` is a list of ``{"epoch": k, "layers": [[I_XL, I_LY],
    ...]}``; ``layer_names`` the layers measured.

    Args:
        x: distinct inputs.
        y: integer labels.
        every: period in epochs.
        layer_names: layers to measure; default every layer with weights.
        num_bins: equal-width bins per unit (Shwartz-Ziv & Tishby: 30).
        value_range: activation range (tanh: ``(-1, 1)``).

    Example:

    ```python
    (x, y), _ = kr.data.load_mi_sphere(seed=0)
    model = zoo.racecar_mi_net()
    model.compile("adam", "sparse_categorical_crossentropy")
    plane = kr.information.InformationPlane(x, y, every=1)
    model.fit(x, y, epochs=2, verbose=0, callbacks=[plane])
    plane.history[-1]["layers"]  # [[I(X;L1), I(L1;Y)], ...]
    ```
    """

    def __init__(self, x, y, every=1, layer_names=None, num_bins=30, value_range=(-1.0, 1.0)):
        super().__init__()
        if int(every) < 1:
            raise ValueError(f"InformationPlane: every must be >= 1, got {every!r}.")
        self.x, self.y = np.asarray(x), np.asarray(y).reshape(-1)
        if len(self.x) != len(self.y):
            raise ValueError(f"InformationPlane: {len(self.x)} inputs but {len(self.y)} labels.")
        self.every, self.layer_names = int(every), layer_names
        self.num_bins, self.value_range = num_bins, value_range
        self.history = []
        self._probe = None

    def _record(self, epoch):
        mi = _measure(self._probe, self.x, self.y, self.num_bins, self.value_range)
        self.history.append({"epoch": epoch, "layers": [list(pair) for pair in mi]})

    def on_train_begin(self, logs=None):
        self._probe, self.layer_names = layer_probe(self.model, self.layer_names)
        if not self.history:
            self._record(0)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every == 0:
            self._record(epoch + 1)
