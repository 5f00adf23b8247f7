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
    if layer_names is None:
        layer_names = [layer.name for layer in model.layers if layer.weights]
    probe = keras.Model(model.inputs, [model.get_layer(n).output for n in layer_names])
    outputs = probe.predict(x, verbose=0, batch_size=4096)
    outputs = outputs if isinstance(outputs, list) else [outputs]
    return [
        (name, *mutual_information(out, y, num_bins, value_range))
        for name, out in zip(layer_names, outputs)
    ]
