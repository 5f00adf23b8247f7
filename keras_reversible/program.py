"""``ReverseProgram``: a model's forward taps and its tied reverse pass, as one object.

This is the public seam between a ``ReversibleModel`` and everything that
runs its reverse pass: the loss terms, the inspection methods, export,
benchmarks and tests. It works on tensors (inside ``tf.function`` and
``tf.GradientTape``); ``ReversibleModel.reconstruct`` and friends add the
batching of numpy arrays and datasets (``keras_reversible.inputs``).

Reading order for the reverse pass: ``graph.py`` (the graph walked once into
a flat program), then this module (how the model runs it), then
``rules.py`` (what each layer's reverse step does).
"""

import difflib
import numbers

import keras
import numpy as np
import tensorflow as tf

from keras_reversible import graph as graph_lib
from keras_reversible import losses, nesting, nodes, registry
from keras_reversible import statistics as statistics_lib
from keras_reversible.inputs import ModelInputs


def start_tensor(model, reverse_from):
    """The tensor whose value starts the reverse pass (``I_r``).

    Args:
        model: a functional ``keras.Model``.
        reverse_from: a layer name, or None for the (single) network output.

    Raises:
        ValueError: no such layer, the input layer, a layer called more than
            once, or None for a model with several outputs.
    """
    if reverse_from is None:
        outputs = keras.tree.flatten(model.outputs)
        if len(outputs) != 1:
            raise ValueError(
                f"Model '{model.name}' has {len(outputs)} outputs; pass "
                "reverse_from=<layer name> to say where the reverse pass starts.")
        return outputs[0]
    names = [layer.name for layer in model.layers]
    if reverse_from not in names:
        close = difflib.get_close_matches(reverse_from, names, n=3)
        hint = f" Did you mean {close}?" if close else ""
        raise ValueError(
            f"reverse_from={reverse_from!r} names no layer of model '{model.name}'.{hint}")
    layer = model.get_layer(reverse_from)
    if isinstance(layer, keras.layers.InputLayer):
        raise ValueError(
            f"reverse_from={reverse_from!r} is the input of model '{model.name}'; the "
            "reverse pass starts at the output of a layer after the input "
            "(a weight layer's output, or None for the network output).")
    calls = nodes.calls(layer)
    if len(calls) != 1 or len(calls[0].output_tensors) != 1:
        raise ValueError(
            f"reverse_from={reverse_from!r}: layer must be called exactly once and "
            f"have one output (it has {len(calls)} calls).")
    return calls[0].output_tensors[0]


class ReverseProgram:
    """The forward taps and the tied reverse pass of a functional model.

    Built once, when the ``ReversibleModel`` is built: the graph is walked
    into a flat program (``graph.ReverseGraph``), checked by tracing it
    once, and a helper model computes the forward output together with
    every forward tensor the reverse pass and the losses need (the *taps*:
    ``I_r``, the constrained points ``L_m``, inputs some rules need).

    Keys: the constrained points and the model inputs are named by the keys
    of their symbolic tensors (``graph.key``); ``constrained`` lists the
    constrained points' keys in forward order (``L_1`` first) and
    ``input_keys`` the inputs'. ``forward`` and ``reverse`` return dicts by
    these keys; ``pairs`` and ``reconstruct`` pick them for you.

    A plain object (not tracked by Keras or TensorFlow), so that the model
    saves exactly its own variables, once; the reverse BatchNormalization
    statistics (``statistics``) are variables of the model.

    Args:
        model: the functional ``keras.Model`` (a ``ReversibleModel``).
        inputs_struct, outputs_struct: the model's inputs and outputs in
            the structure it was built with.
        reverse_from: name of the layer whose output is ``I_r``; None for
            the network output.
        input_range: callable applied to ``L'_1``, or None.
        options: reversal options (``registry.OPTIONS``: ``max_pool_reverse``,
            ``upsample_reverse``, ``unknown_layers``).

    Raises:
        ValueError: a bad ``reverse_from``, or a rule returning a wrong
            shape; ``registry.UnsupportedLayerError`` for a layer without a
            rule (with ``unknown_layers="error"``).

    Example:

    ```python
    import keras
    import numpy as np
    import tensorflow as tf
    import keras_reversible as kr

    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    outputs = keras.layers.Dense(3)(keras.layers.Flatten()(h))
    program = kr.ReversibleModel(inputs, outputs).reverse_program
    x = np.random.rand(2, 8, 8, 1).astype("float32")
    y_pred, taps = program.forward(x, training=False)   # taps: key -> tensor
    back = program.reverse(taps, training=False)        # key -> L'
    x_regen = program.reconstruct(x)                    # L'_1, shaped like x
    for l, l_rev in program.pairs(x):                   # (L_1, L'_1), (L_2, L'_2)
        print(float(tf.reduce_mean(tf.square(l - l_rev))))
    ```
    """

    def __init__(self, model, *, inputs_struct, outputs_struct, reverse_from=None,
                 input_range=None, options=None):
        outputs = keras.tree.flatten(model.outputs)
        start = start_tensor(model, reverse_from)
        if nesting.has_nested_models(outputs):
            flat = nesting.flatten(keras.tree.flatten(model.inputs), outputs)
            outputs = [flat[graph_lib.key(t)] for t in outputs]
            start = flat[graph_lib.key(start)]
        self.graph = graph_lib.ReverseGraph(model, start, input_range=input_range,
                                            options=options)
        self.graph.check()
        self.inputs = ModelInputs(keras.tree.flatten(model.inputs), inputs_struct, model.name)
        self._outputs = outputs
        self._outputs_struct = outputs_struct
        tap_keys, tap_tensors = self.graph.tap_tensors()
        input_keys = set(self.graph.input_keys)
        extra = [t for k, t in zip(tap_keys, tap_tensors) if k not in input_keys]
        self._tap_keys = [graph_lib.key(t) for t in extra]
        self._taps_model = keras.Model(inputs_struct, [*self._outputs, *extra],
                                       name=f"{model.name}_taps")
        self.statistics = statistics_lib.ReverseStatistics(
            model, [layer for layer in self.graph.range_layers()
                    if statistics_lib.is_reverse_batch_norm(layer)])
        self._latent_head = None

    # ------------------------------------------------------------------
    # What the program is

    @property
    def constrained(self):
        """Keys of the constrained points ``L_1 … L_n``, forward order."""
        return self.graph.constrained

    @property
    def num_constrained(self):
        """``n``: how many constrained points the reverse path offers."""
        return len(self.graph.constrained)

    @property
    def weight_layers(self):
        """The weight layers on the reverse path, forward order."""
        return self.graph.weight_layers

    @property
    def input_keys(self):
        """Keys of the model inputs, in the order of ``model.inputs``."""
        return self.graph.input_keys

    @property
    def starts_at_output(self):
        """Whether the reverse pass starts at the (first) network output."""
        return graph_lib.key(self.graph.start) == graph_lib.key(self._outputs[0])

    def check_depth(self, depth, where):
        """Raises unless ``depth`` is an int in ``[0, num_constrained]``."""
        if isinstance(depth, bool) or not isinstance(depth, numbers.Integral):
            raise TypeError(f"{where}: depth must be an int or None, got "
                            f"{type(depth).__name__}: {depth!r}.")
        if not 0 <= depth <= self.num_constrained:
            raise ValueError(f"{where}: depth must be in [0, {self.num_constrained}], got {depth}.")

    def describe(self):
        """A readable listing: layers, rules, constrained points, range ops."""
        return self.graph.describe()

    # ------------------------------------------------------------------
    # Running it (tensors in, tensors out)

    def forward(self, x, training=False):
        """The forward pass, keeping the taps.

        Args:
            x: input batch, structured like the model inputs.
            training: forward layers in training mode.

        Returns:
            ``(y_pred, taps)``: the model output and a dict key -> forward
            value holding ``I_r``, every constrained point and every input.
        """
        values = self._taps_model(x, training=training)
        values = values if isinstance(values, (list, tuple)) else [values]
        n_out = len(self._outputs)
        y_pred = keras.tree.pack_sequence_as(self._outputs_struct, list(values[:n_out]))
        taps = dict(zip(self._tap_keys, values[n_out:]))
        taps.update(zip(self.graph.input_keys, keras.tree.flatten(x)))
        return y_pred, taps

    def reverse(self, taps, training=False, start=None):
        """The reverse pass from ``start`` (default: ``I_r``'s forward value).

        In training mode reverse BatchNormalization normalises with batch
        statistics and, when the pass starts from ``I_r``, folds them into
        the reverse moving statistics (not for a generated latent feature).

        Args:
            taps: from ``forward``.
            training: training mode.
            start: a value to start from instead of ``I_r`` (same shape).

        Returns:
            dict key -> ``L'`` for every constrained point and model input.
        """
        update = training and start is None
        start = taps[graph_lib.key(self.graph.start)] if start is None else start
        return self.graph.run(start, taps, training=training, statistics=self.statistics,
                              update_statistics=update)

    def pairs(self, x, depth=None, training=False):
        """``[(L_m, L'_m)]`` for ``m = 1..depth`` (default all), forward order."""
        keys = self.constrained[:depth]
        _, taps = self.forward(x, training)
        back = self.reverse(taps, training)
        return [(taps[k], back[k]) for k in keys]

    def reconstruct(self, x, training=False):
        """``L'_1`` at every input, shaped like ``x`` (one tensor for one input)."""
        _, taps = self.forward(x, training)
        back = self.reverse(taps, training)
        out = [back[k] for k in self.input_keys]
        return out[0] if len(out) == 1 else out

    # ------------------------------------------------------------------
    # Reverse BatchNormalization statistics

    def calibrate(self, x, batch_size=256, where="calibrate_reverse_statistics"):
        """Sets the reverse BN statistics to their averages over ``x``.

        A "precise BN" pass for the reverse pass: the forward runs in
        inference mode (the forward layers' statistics are untouched), the
        reverse pass normalises each batch with its own statistics, and each
        reverse BatchNormalization's moving mean and variance become the mean
        of the per-batch values. Use it after training with λ = 0 (the
        reverse statistics were never updated) or to replace the exponential
        averages of training by exact ones before measuring reconstructions.

        ``x`` must be finite (as in ``fit``), and so must the statistics it
        gives (a float16 overflow is refused): otherwise nothing is stored
        and the previous statistics stay as they were.

        Args:
            x: input array(s) structured like the model inputs, or a
                ``tf.data.Dataset`` of batches of them (or of ``(x, y)``
                tuples, whose ``x`` is used).
            batch_size: batch size for arrays (a positive int).
            where: the public method, for the messages.

        Returns:
            The number of batches averaged (0 when the reverse pass has no
            BatchNormalization; ``x`` is checked all the same, a dataset's
            batches only when there are statistics to compute).

        Raises:
            ValueError: ``x`` does not fit the model's inputs or is empty,
                holds NaN or Inf, or gives non-finite statistics.
        """
        stats = self.statistics
        batches = self.inputs.batches(x, batch_size, where)
        if not isinstance(x, tf.data.Dataset):
            batches = list(batches)  # every array checked before any work
        if not len(stats):
            if isinstance(x, tf.data.Dataset):
                next(iter(batches))  # the first batch is checked
            return 0

        def step(xb, momentum):
            stats.momentum = momentum
            try:
                _, taps = self.forward(xb, False)
                self.reverse(taps, training=True)
            finally:
                stats.momentum = None
            return tf.constant(0)

        fn = self.inputs.function(where, step, tf.TensorSpec((), tf.float32))
        previous = [v.numpy() for v in stats.variables]
        count = 0
        try:
            for i, batch in enumerate(batches):
                if not all(np.isfinite(a).all() for a in batch if a.dtype.kind == "f"):
                    raise ValueError(
                        f"{where}: batch {i} of x contains NaN or Inf; the reverse "
                        "statistics were left as they were. Clean the data first.")
                # The k-th batch enters with weight 1/(k+1): a running mean.
                fn(self.inputs.pack(batch), tf.constant(count / (count + 1.0)))
                count += 1
            bad = [v.name for v in stats.variables if not np.isfinite(v.numpy()).all()]
            if bad:
                raise ValueError(
                    f"{where}: x gives non-finite reverse statistics ({', '.join(bad)}; "
                    "an overflow of the reverse signal, e.g. in float16); the previous "
                    "statistics were kept.")
        except BaseException:
            for v, value in zip(stats.variables, previous):
                v.assign(value)
            raise
        return count

    # ------------------------------------------------------------------
    # RNL latent feature generation (RN eq. 8, algorithm 1)

    @property
    def latent_head(self):
        """The last weight layer, its input's range ops and the layers after it.

        Raises:
            ValueError: the model has several outputs, or its output does
                not come from a weight layer through single-input layers.
        """
        if self._latent_head is None:
            self._latent_head = self._find_latent_head()
        return self._latent_head

    def _find_latent_head(self):
        if len(self._outputs) != 1:
            raise ValueError("latent_generation needs a model with one output.")
        chain, cur = [], self._outputs[0]
        while True:
            layer, node = nodes.producer(cur)
            if node is None or len(node.input_tensors) != 1:
                raise ValueError(
                    "latent_generation: the output must come from a weight layer "
                    "(Dense, Conv...) through single-input layers; found "
                    f"{'the input' if node is None else repr(layer.name)} instead.")
            rule = registry.rule_for(layer)
            if rule.kind == "weight":
                alpha = node.input_tensors[0]
                return {
                    "layer": layer,
                    "rule": rule,
                    "input_shape": tuple(alpha.shape),
                    "range_ops": self.graph.collect_range_ops(alpha),
                    "chain": chain[::-1],
                }
            chain.append(layer)
            cur = node.input_tensors[0]

    def generate_latent(self, o, settings, step, training=False, replica=0, num_replicas=1):
        """``(tr(o), α̂, ô)`` for the outputs ``o`` (see ``losses.LatentGeneration``).

        Args:
            o: the network outputs, float32.
            settings: a ``losses.LatentGeneration``.
            step: the training step (int32 scalar) seeding ``tr``'s draw.
            training: run the head's layers in training mode.
            replica, num_replicas: under ``tf.distribute`` each replica
                takes its own rows of the global batch's random draw.
        """
        head = self.latent_head
        t = losses.transform_output(o, settings.num_entries, settings.closeness,
                                    tf.stack([settings.seed, step]), replica, num_replicas)
        ctx = registry.ReverseContext([head["input_shape"]], training=training, options={},
                                      statistics=self.statistics)
        alpha = head["rule"].transpose(head["layer"], t, ctx)
        for op in head["range_ops"]:
            alpha = op(alpha, ctx)
        o_hat = head["layer"](alpha)
        for layer in head["chain"]:
            o_hat = layer(o_hat, training=training) if layer._call_has_training_arg else layer(o_hat)
        return t, alpha, o_hat

    def latent_features(self, x, settings, step):
        """RN algorithm 1's quantities on ``x`` in inference mode, for inspection.

        The steps the latent loss runs in training: the output ``o``,
        ``tr(o)``, the generated latent feature ``α̂`` (one tied step back
        through the last weight layer), ``ô`` (the last layer run forward on
        ``α̂``) and, when the reverse pass starts at the network output, the
        reconstructions of ``o`` and of ``tr(o)`` in input space: the latter
        is the reverse pass continued from ``α̂`` down to the input.

        Args:
            x: input batch, structured like the model inputs.
            settings: a ``losses.LatentGeneration``.
            step: the training step (an int) whose random entry choice
                ``tr`` uses (in training the seed is ``(seed, optimizer step)``).

        Returns:
            dict of tensors: ``output`` (o), ``transformed`` (tr(o)),
            ``latent`` (α̂), ``latent_output`` (ô) and, when the reverse pass
            starts at the network output, ``reconstruction`` (x̄ from o) and
            ``latent_reconstruction`` (x̄ from tr(o)).
        """
        y_pred, taps = self.forward(x, False)
        o = tf.cast(keras.tree.flatten(y_pred)[0], tf.float32)
        t, alpha, o_hat = self.generate_latent(o, settings, tf.constant(step, tf.int32))
        out = {"output": o, "transformed": t, "latent": alpha, "latent_output": o_hat}
        if self.starts_at_output:
            first = self.input_keys[0]
            out["reconstruction"] = self.reverse(taps, False)[first]
            out["latent_reconstruction"] = self.reverse(taps, False, start=t)[first]
        return out
