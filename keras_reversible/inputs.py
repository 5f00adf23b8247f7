"""What a model's inspection methods accept: checked arrays, batches, fixed signatures.

``ModelInputs`` turns what a user passes to ``reconstruct``,
``reverse_activations``, ``calibrate_reverse_statistics`` or
``generate_latent`` (an array, a list of arrays, a dict, a batched
``tf.data.Dataset``) into checked batches, runs a ``tf.function`` with one
fixed input signature on them and concatenates the numpy results.
"""

import numbers

import keras
import numpy as np
import tensorflow as tf

from keras_reversible import nodes


def check_bool(value, name, where):
    """Raises ``TypeError`` unless ``value`` is a bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: {name} must be True or False, got "
                        f"{type(value).__name__}: {value!r}.")


def check_batch_size(batch_size, where):
    """Raises ``TypeError`` / ``ValueError`` unless ``batch_size`` is a positive int."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
        raise TypeError(f"{where}: batch_size must be a positive int, got "
                        f"{type(batch_size).__name__}: {batch_size!r}.")
    if batch_size < 1:
        raise ValueError(f"{where}: batch_size must be a positive int, got {batch_size}.")


def check_finite(x):
    """``x`` with a NaN/Inf check attached (the caller must use the result)."""

    def check(t):
        if t is None or not t.dtype.is_floating:
            return t
        return tf.debugging.assert_all_finite(
            t,
            "ReversibleModel: the input batch contains NaN or Inf. The "
            "racecar loss compares reconstructions with the input, so "
            "every gradient would be NaN; no weight was updated. Clean "
            "the data (e.g. dataset.filter on tf.math.is_finite).",
        )

    return keras.tree.map_structure(check, x)


class ModelInputs:
    """The input contract of a functional model's inspection methods.

    Args:
        inputs: the model's symbolic inputs, flat.
        structure: their structure (a model's inputs as it was built).
        model_name: for the messages.

    Example:

    ```python
    import keras
    import numpy as np
    from keras_reversible.inputs import ModelInputs

    model_inputs = keras.Input((3,))
    inputs = ModelInputs([model_inputs], model_inputs, "m")
    fn = inputs.function("double", lambda x: 2.0 * x)
    doubled = inputs.map(fn, np.ones((5, 3)), batch_size=2, where="double")  # (5, 3)
    ```
    """

    def __init__(self, inputs, structure, model_name):
        self.inputs = list(inputs)
        self.structure = structure
        self.model_name = model_name
        self._functions = {}

    def specs(self, free_batch=True, named=False):
        """One ``tf.TensorSpec`` per input, in the inputs' structure.

        Args:
            free_batch: a free batch axis (else the inputs' own).
            named: name each spec after its input.
        """

        def spec(t):
            shape = (None, *t.shape[1:]) if free_batch else t.shape
            return tf.TensorSpec(shape, t.dtype, name=t.name if named else None)

        return keras.tree.map_structure(spec, self.structure)

    def pack(self, flat):
        """A flat list of per-input values in the inputs' structure."""
        return keras.tree.pack_sequence_as(self.structure, flat)

    def function(self, name, fn, *extra_signature):
        """``fn`` as a ``tf.function`` over the inputs' signature, cached by ``name``.

        The signature has a free batch axis (and the model's own free axes),
        so no call can relax or retrace it: ``check`` tests the same shapes
        first.
        """
        if name not in self._functions:
            self._functions[name] = tf.function(
                fn, input_signature=[self.specs(), *extra_signature])
        return self._functions[name]

    def _names(self):
        return ", ".join(repr(nodes.producer(t)[0].name) for t in self.inputs)

    def check(self, x, where, what="x"):
        """``x`` as a flat list of numpy arrays, checked against the inputs.

        Args:
            x: an array, a tensor or a nested list of numbers (one-input
                models), or a list/tuple/dict of them (one per input).
            where: the public method, for the messages.
            what: how to call ``x`` in the messages.

        Returns:
            list of numpy arrays, one per model input, in the inputs' dtypes.

        Raises:
            TypeError: not an array, or not numeric.
            ValueError: wrong number of inputs, rank or static dimension
                (a single example without its batch axis is named as such),
                batch sizes that differ between inputs, or an empty batch.
        """
        if len(self.inputs) == 1:
            if isinstance(x, (list, tuple)) and x and all(hasattr(t, "shape") for t in x):
                flat = list(x)  # arrays, one per input (as Keras reads a list of arrays)
            elif isinstance(x, dict) and len(x) == 1:
                flat = list(x.values())
            else:
                flat = [x]  # an array, a tensor or nested lists of numbers
        elif isinstance(x, dict) and isinstance(self.structure, dict):
            if set(x) != set(self.structure):
                raise ValueError(f"{where}: {what} has the keys {sorted(x)}; the model's "
                                 f"inputs are {sorted(self.structure)}.")
            flat = keras.tree.flatten(x)
        elif isinstance(x, (list, tuple)):
            flat = list(x)
        else:
            flat = [x]
        if len(flat) != len(self.inputs):
            raise ValueError(
                f"{where}: model '{self.model_name}' has {len(self.inputs)} inputs "
                f"({self._names()}); {what} holds {len(flat)}.")
        arrays, sizes = [], []
        for value, t in zip(flat, self.inputs):
            arrays.append(self._check_one(value, t, where, what))
            sizes.append(arrays[-1].shape[0])
        if len(set(sizes)) > 1:
            raise ValueError(f"{where}: the inputs of {what} have different batch sizes "
                             f"{sizes} (for {self._names()}).")
        if sizes[0] == 0:
            raise ValueError(f"{where}: {what} is empty (0 examples): no batches to run.")
        return arrays

    @staticmethod
    def _check_one(value, t, where, what):
        name = nodes.producer(t)[0].name
        expected = (None, *t.shape[1:])
        shown = "(batch, " + ", ".join(str(d) for d in expected[1:]) + ")"
        if isinstance(value, (str, bytes)):
            raise TypeError(f"{where}: input {name!r} must be a numeric array, got a string.")
        try:
            a = np.asarray(value)
        except (TypeError, ValueError) as err:
            raise TypeError(f"{where}: input {name!r} is not an array "
                            f"({type(value).__name__}): {err}") from err
        if a.dtype.kind not in "biuf":
            raise TypeError(f"{where}: input {name!r} must be a numeric array, got "
                            f"dtype {a.dtype} ({type(value).__name__}).")
        if a.ndim != len(expected):
            single = a.ndim == len(expected) - 1 and all(
                e is None or e == d for e, d in zip(expected[1:], a.shape))
            hint = (" It looks like a single example without its batch axis: use x[None]"
                    " (a tf.data.Dataset must be batched: dataset.batch(n))."
                    if single else "")
            raise ValueError(
                f"{where}: input {name!r} expects rank {len(expected)}, shape {shown}; "
                f"{what} has shape {a.shape}.{hint}")
        if any(e is not None and e != d for e, d in zip(expected[1:], a.shape[1:])):
            raise ValueError(f"{where}: input {name!r} expects shape {shown}; "
                             f"{what} has shape {a.shape}.")
        return a.astype(t.dtype, copy=False)

    def batches(self, x, batch_size, where):
        """Checked batches of ``x`` (arrays or a ``tf.data.Dataset``), each a flat list.

        A dataset is used as batched; an element ``(x, y[, w])`` gives its ``x``.
        """
        check_batch_size(batch_size, where)
        if isinstance(x, tf.data.Dataset):
            count = 0
            for i, element in enumerate(x):
                if isinstance(element, tuple):
                    element = element[0]
                count += 1
                yield self.check(element, where, f"batch {i} of the dataset")
            if count == 0:
                raise ValueError(f"{where}: the dataset holds no batches.")
            return
        flat = self.check(x, where)
        for start in range(0, flat[0].shape[0], batch_size):
            yield [t[start:start + batch_size] for t in flat]

    def map(self, fn, x, batch_size, where):
        """Runs ``fn`` over checked batches of ``x``; returns numpy (nested) results."""
        pieces = []
        for chunk in self.batches(x, batch_size, where):
            pieces.append(keras.tree.map_structure(np.asarray, fn(self.pack(chunk))))
        return keras.tree.map_structure(lambda *ts: np.concatenate(ts, axis=0), *pieces)
