"""``ReversibleModel``: a functional Keras model trained with its reverse pass."""

import dataclasses
import difflib
import numbers
import os
import warnings

import keras
import numpy as np
import tensorflow as tf

from keras_reversible import export as export_lib
from keras_reversible import graph as graph_lib
from keras_reversible import losses, rules
from keras_reversible import statistics as statistics_lib
from keras_reversible.regularizers import SRIP

MAX_POOL_REVERSE = ("upsample", "unpool")
UPSAMPLE_REVERSE = ("max_pool", "transpose")

# The reversal settings (DESIGN §3), in the constructor's order.
SETTINGS = ("depth", "racecar_weight", "reverse_from", "input_range", "reduction",
            "latent_generation", "max_pool_reverse", "upsample_reverse")
# keras.Model's keywords that ReversibleModel passes through: a functional
# model honours ``trainable`` alone and silently drops every other keyword
# (``dtype``, ``autocast``, ``activity_regularizer``, typos), so only it passes.
MODEL_KEYWORDS = ("trainable",)


def check_keywords(owner, kwargs, valid):
    """Raises ``TypeError`` for a keyword of ``kwargs`` not in ``valid``.

    The message names the keyword and the closest valid name (or lists them).

    Args:
        owner: what was called, for the message (e.g. ``"make_reversible"``).
        kwargs: the keyword arguments received.
        valid: the names ``owner`` accepts.
    """
    for name in kwargs:
        if name in valid:
            continue
        close = difflib.get_close_matches(name, valid, n=1)
        hint = (f"did you mean {close[0]!r}?" if close
                else f"valid keywords: {', '.join(sorted(valid))}.")
        raise TypeError(f"{owner}() got an unexpected keyword argument {name!r}; {hint}")


def _check_bool(value, name, where):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: {name} must be True or False, got "
                        f"{type(value).__name__}: {value!r}.")


def _check_batch_size(batch_size, where):
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
        raise TypeError(f"{where}: batch_size must be a positive int, got "
                        f"{type(batch_size).__name__}: {batch_size!r}.")
    if batch_size < 1:
        raise ValueError(f"{where}: batch_size must be a positive int, got {batch_size}.")


def _num_replicas():
    return tf.distribute.get_strategy().num_replicas_in_sync


def _resolve_input_range(value):
    if value is None:
        return None
    if isinstance(value, str) or callable(value):
        try:
            return keras.activations.get(value)
        except (ValueError, TypeError) as err:
            raise ValueError(
                f"input_range: unknown activation {value!r} (use None, a "
                "Keras activation name such as 'relu' or 'tanh', or a callable)."
            ) from err
    raise TypeError(
        f"input_range must be None, an activation name or a callable, got "
        f"{type(value).__name__}: {value!r}."
    )


class _Internals:
    """Holds the reverse program and the tap model.

    A plain object, so that neither Keras nor TensorFlow tracking sees the
    helper model inside: the reversible model saves exactly the forward
    model's variables, once.
    """

    def __init__(self, reverse, taps_model, tap_keys, latent_head):
        self.reverse = reverse
        self.taps_model = taps_model
        self.tap_keys = tap_keys
        self.latent_head = latent_head
        self.functions = {}


@keras.saving.register_keras_serializable(package="keras_reversible")
class ReversibleModel(keras.Model):
    """A functional model with a tied reverse pass and reversal losses.

    The reverse pass walks the model's graph backwards from ``I_r`` (the
    output of ``reverse_from``, default the network output) and applies, at
    each layer, the transpose of its linear part with the same variables
    (Dense ``Wᵀ(y − b)``, Conv2D ``conv2d_transpose(y − b, k)``, MaxPooling
    → nearest up-sampling, Add → copy, Concatenate → split, ...; see
    ``keras_reversible.rules``). After each transposed weight layer ``m`` the
    *range ops* of its input ``L_m`` (BatchNormalization and activation of
    layer ``m − 1``) are re-applied forward, so ``L'_m`` lives in the range
    of ``L_m``. At ``L_1`` the ``input_range`` op is applied.

    Training adds the racecar loss ``Σ_{m≤s} λ_m D(L_m, L'_m)`` (and RNL
    latent generation when enabled) to the compiled task loss. ``fit``
    reports every term: ``loss = task_loss + racecar_loss [+ latent_loss]
    [+ ortho_loss] [+ regularization_loss]``. A term whose weight is 0 is not
    computed and reports 0.

    Reverse BatchNormalization uses the forward layer's γ/β. In training it
    normalises the reverse signal with that signal's own batch statistics and
    folds them into the model's *reverse* moving statistics (non-trainable
    variables ``<bn>_reverse_moving_mean/variance``, with the forward layer's
    momentum); in inference it normalises with those. The forward layers'
    moving averages belong to the forward pass alone. A model trained without
    the reverse pass (λ = 0) has untrained reverse statistics: call
    ``calibrate_reverse_statistics`` before reconstructing in inference mode.

    Args:
        inputs: functional inputs, as for ``keras.Model``.
        outputs: functional outputs.
        name: model name.
        depth: ``s``, how many constrained points, counted from the input,
            enter the racecar loss; default all on the reverse path. 0
            trains without the reverse pass.
        racecar_weight: ``λ``: a float, or one float per constrained point
            (length ``depth``). Default 1.0.
        reverse_from: name of the layer whose output starts the reverse pass
            (``I_r``); default the network output. Layers after it (the head)
            get no gradient from the racecar loss.
        input_range: range op applied to ``L'_1``: None (identity, default),
            an activation name (``"relu"`` for images in [0, 1], ``"tanh"``)
            or a callable.
        reduction: ``"mean"`` (default: mean of squares, scale-free) or
            ``"l2_loss"`` (the official racecar code's ``tf.nn.l2_loss``,
            needed for the papers' λ values to carry over).
        latent_generation: RNL latent feature generation (RN eq. 8): None
            (off, default), True, a dict of ``LatentGeneration`` fields.
        max_pool_reverse: ``"upsample"`` (paper: nearest ×stride) or
            ``"unpool"`` (exact transpose: to the arg-max positions).
        upsample_reverse: ``"max_pool"`` (paper, racecar table 13) or
            ``"transpose"`` (exact transpose of the up-sampling).
        **kwargs: ``trainable``, passed to ``keras.Model`` (a functional
            model ignores its other keywords, so they are refused).

    Raises:
        ValueError: a bad setting, or a layer without a reverse rule
            (``keras_reversible.UnsupportedLayerError``), naming it.
        TypeError: a setting of the wrong type, or an unknown keyword (the
            message names the closest valid one).

    Example:

    ```python
    import keras
    import numpy as np
    import keras_reversible as kr

    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(1, 3, padding="same", activation="relu", name="i_r")(x)
    outputs = keras.layers.Dense(10)(keras.layers.Flatten()(x))
    model = kr.ReversibleModel(inputs, outputs, reverse_from="i_r",
                               input_range="relu", racecar_weight=0.1)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.rand(32, 28, 28, 1).astype("float32")
    history = model.fit(x, np.arange(32) % 10, epochs=1, verbose=0)
    print(sorted(history.history))  # ['loss', 'racecar_loss', 'task_loss']
    x_regen = model.reconstruct(x)   # (32, 28, 28, 1)
    ```

    References:
        Xie & Thuerey, "Learning general and reusable features via racecar
        training" (eq. 1; published as "Reviving Autoencoder Pretraining").
        Yu, "Boosting mapping functionality of neural networks via latent
        feature generation based on reversible learning" (eq. 3–8).
    """

    def __init__(
        self,
        inputs,
        outputs,
        name=None,
        *,
        depth=None,
        racecar_weight=1.0,
        reverse_from=None,
        input_range=None,
        reduction="mean",
        latent_generation=None,
        max_pool_reverse="upsample",
        upsample_reverse="max_pool",
        **kwargs,
    ):
        check_keywords(type(self).__name__, kwargs, SETTINGS + MODEL_KEYWORDS)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
        self._settings = self._validate_settings(
            depth=depth,
            racecar_weight=racecar_weight,
            reverse_from=reverse_from,
            input_range=input_range,
            reduction=reduction,
            latent_generation=latent_generation,
            max_pool_reverse=max_pool_reverse,
            upsample_reverse=upsample_reverse,
        )
        self._rev = self._build_internals()
        self._reverse_statistics = statistics_lib.ReverseStatistics(
            self, [layer for layer in self._rev.reverse.range_layers()
                   if statistics_lib.is_reverse_batch_norm(layer)])
        self.task_loss_tracker = keras.metrics.Mean(name="task_loss")
        self.racecar_loss_tracker = keras.metrics.Mean(name="racecar_loss")
        self.latent_loss_tracker = (
            keras.metrics.Mean(name="latent_loss") if self._latent else None
        )
        self.ortho_loss_tracker = (
            keras.metrics.Mean(name="ortho_loss")
            if any(isinstance(v.regularizer, SRIP) for v in self._regularized())
            else None
        )
        self.regularization_loss_tracker = (
            keras.metrics.Mean(name="regularization_loss")
            if any(not isinstance(v.regularizer, SRIP) for v in self._regularized())
            else None
        )

    # ------------------------------------------------------------------
    # Settings

    def _validate_settings(self, **s):
        if s["reduction"] not in losses.REDUCTIONS:
            raise ValueError(
                f"reduction must be one of {losses.REDUCTIONS}, got {s['reduction']!r}."
            )
        if s["max_pool_reverse"] not in MAX_POOL_REVERSE:
            raise ValueError(
                f"max_pool_reverse must be one of {MAX_POOL_REVERSE}, got "
                f"{s['max_pool_reverse']!r}."
            )
        if s["upsample_reverse"] not in UPSAMPLE_REVERSE:
            raise ValueError(
                f"upsample_reverse must be one of {UPSAMPLE_REVERSE}, got "
                f"{s['upsample_reverse']!r}."
            )
        if s["reverse_from"] is not None and not isinstance(s["reverse_from"], str):
            raise TypeError(
                "reverse_from must be a layer name (str) or None, got "
                f"{type(s['reverse_from']).__name__}: {s['reverse_from']!r}."
            )
        depth = s["depth"]
        if depth is not None and (
            isinstance(depth, bool) or not isinstance(depth, numbers.Integral)
        ):
            raise TypeError(f"depth must be an int or None, got {type(depth).__name__}: {depth!r}.")
        if depth is not None and depth < 0:
            raise ValueError(f"depth must be >= 0, got {depth}.")
        weight = s["racecar_weight"]
        if isinstance(weight, (list, tuple)):
            weights = list(weight)
        elif isinstance(weight, numbers.Real) and not isinstance(weight, bool):
            weights = [weight]
        else:
            raise TypeError(
                "racecar_weight must be a float or a list of floats, got "
                f"{type(weight).__name__}: {weight!r}."
            )
        for w in weights:
            if not isinstance(w, numbers.Real) or isinstance(w, bool):
                raise TypeError(f"racecar_weight entries must be floats, got {w!r} in {weight!r}.")
            if not np.isfinite(w) or w < 0:
                raise ValueError(
                    f"racecar_weight entries must be finite and >= 0, got {w!r} in {weight!r}."
                )
        s["racecar_weight"] = [float(w) for w in weights] if isinstance(weight, (list, tuple)) else float(weight)
        self._input_range_fn = _resolve_input_range(s["input_range"])
        self._latent = losses.LatentGeneration.parse(s["latent_generation"])
        if self._latent is not None and self._latent.weight == 0:
            self._latent = None
        return s

    def _start_tensor(self):
        name = self._settings["reverse_from"]
        if name is None:
            outputs = keras.tree.flatten(self.outputs)
            if len(outputs) != 1:
                raise ValueError(
                    f"Model '{self.name}' has {len(outputs)} outputs; pass "
                    "reverse_from=<layer name> to say where the reverse pass starts."
                )
            return outputs[0]
        names = [layer.name for layer in self.layers]
        if name not in names:
            close = difflib.get_close_matches(name, names, n=3)
            hint = f" Did you mean {close}?" if close else ""
            raise ValueError(
                f"reverse_from={name!r} names no layer of model '{self.name}'.{hint}"
            )
        layer = self.get_layer(name)
        if isinstance(layer, keras.layers.InputLayer):
            raise ValueError(
                f"reverse_from={name!r} is the input of model '{self.name}'; the "
                "reverse pass starts at the output of a layer after the input "
                "(a weight layer's output, or None for the network output)."
            )
        nodes = graph_lib.calls(layer)
        if len(nodes) != 1 or len(nodes[0].output_tensors) != 1:
            raise ValueError(
                f"reverse_from={name!r}: layer must be called exactly once and "
                f"have one output (it has {len(nodes)} calls)."
            )
        return nodes[0].output_tensors[0]

    def _build_internals(self):
        s = self._settings
        reverse = graph_lib.ReverseGraph(
            self,
            self._start_tensor(),
            input_range=self._input_range_fn,
            options={
                "max_pool_reverse": s["max_pool_reverse"],
                "upsample_reverse": s["upsample_reverse"],
            },
        )
        n = len(reverse.constrained)
        depth = n if s["depth"] is None else s["depth"]
        if depth > n:
            names = ", ".join(layer.name for layer in reverse.weight_layers)
            raise ValueError(
                f"depth={depth} but the reverse pass of model '{self.name}' "
                f"constrains only {n} points (the inputs of its weight layers: "
                f"{names}); use depth <= {n}."
            )
        weights = s["racecar_weight"]
        if isinstance(weights, list):
            if len(weights) != depth:
                raise ValueError(
                    f"racecar_weight has {len(weights)} entries but depth is "
                    f"{depth}; give one λ per constrained point or a single float."
                )
        else:
            weights = [weights] * depth
        self._depth = depth
        self._lambdas = weights
        reverse.check()
        tap_keys, tap_tensors = reverse.tap_tensors()
        outputs = keras.tree.flatten(self.outputs)
        input_keys = {graph_lib.key(t) for t in keras.tree.flatten(self.inputs)}
        extra = [t for k, t in zip(tap_keys, tap_tensors) if k not in input_keys]
        taps_model = keras.Model(self._inputs_struct, [*outputs, *extra], name=f"{self.name}_taps")
        latent_head = self._find_latent_head(reverse) if self._latent else None
        internals = _Internals(reverse, taps_model, [graph_lib.key(t) for t in extra], latent_head)
        return internals

    def _find_latent_head(self, reverse):
        """The last weight layer and the single-input layers after it."""
        outputs = keras.tree.flatten(self.outputs)
        if len(outputs) != 1:
            raise ValueError("latent_generation needs a model with one output.")
        chain, cur = [], outputs[0]
        while True:
            layer, node = graph_lib.producer(cur)
            if node is None or len(node.input_tensors) != 1:
                raise ValueError(
                    "latent_generation: the output must come from a weight layer "
                    "(Dense, Conv...) through single-input layers; found "
                    f"{'the input' if node is None else repr(layer.name)} instead."
                )
            rule = rules.rule_for(layer)
            if rule.kind == "weight":
                alpha = node.input_tensors[0]
                return {
                    "layer": layer,
                    "rule": rule,
                    "input_shape": tuple(alpha.shape),
                    "range_ops": reverse.collect_range_ops(alpha),
                    "chain": chain[::-1],
                }
            chain.append(layer)
            cur = node.input_tensors[0]

    def _regularized(self):
        return [v for v in self.trainable_weights if getattr(v, "regularizer", None) is not None]

    # ------------------------------------------------------------------
    # Properties

    @property
    def depth(self):
        """``s``: the number of constrained points in the racecar loss."""
        return self._depth

    @property
    def racecar_weights(self):
        """``λ_1 … λ_s`` as a list of floats."""
        return list(self._lambdas)

    @property
    def num_constrained(self):
        """How many constrained points the reverse path offers (max depth)."""
        return len(self._rev.reverse.constrained)

    @property
    def reversal_settings(self):
        """The reversal settings, as passed to the constructor."""
        return dict(self._settings)

    @property
    def reverse_statistics(self):
        """The reverse BatchNormalization moving statistics (variables)."""
        return self._reverse_statistics.variables

    def reverse_summary(self, print_fn=None):
        """Prints the reverse program: layers, rules, constrained points."""
        (print_fn or print)(self._rev.reverse.describe())

    # ------------------------------------------------------------------
    # Forward with taps, reverse pass, loss terms

    def _forward(self, x, training):
        flat_x = keras.tree.flatten(x)
        values = self._rev.taps_model(x, training=training)
        values = values if isinstance(values, (list, tuple)) else [values]
        n_out = len(keras.tree.flatten(self.outputs))
        y_pred = keras.tree.pack_sequence_as(self._outputs_struct, list(values[:n_out]))
        taps = dict(zip(self._rev.tap_keys, values[n_out:]))
        for t, v in zip(keras.tree.flatten(self.inputs), flat_x):
            taps[graph_lib.key(t)] = v
        return y_pred, taps

    def _reverse(self, taps, training, start=None):
        """The reverse pass from ``start`` (default ``I_r``'s forward value).

        In training it updates the reverse BN statistics when it starts from
        ``I_r`` (not for generated latent features).
        """
        reverse = self._rev.reverse
        update = training and start is None
        start = taps[graph_lib.key(reverse.start)] if start is None else start
        return reverse.run(start, taps, training=training,
                           statistics=self._reverse_statistics, update_statistics=update)

    def _racecar_term(self, taps, training):
        """Σ λ_m D(L_m, L'_m), as this replica's share of the global value."""
        if not self._racecar_on():
            return None
        rev = self._reverse(taps, training)
        total = tf.constant(0.0)
        reduction = self._settings["reduction"]
        for k, lam in zip(self._rev.reverse.constrained, self._lambdas):
            if lam:
                total += lam * losses.reconstruction_error(taps[k], rev[k], reduction)
        if reduction == "mean":
            total /= _num_replicas()
        return total

    def _generate_latent(self, o, lg, step, training, replica=0, num_replicas=1):
        """RN eq. 8 and alg. 1: ``(tr(o), α̂, ô)`` for the outputs ``o``.

        Under ``tf.distribute`` each replica takes its own rows of the global
        batch's random draw (``replica`` of ``num_replicas``).
        """
        head = self._rev.latent_head
        t = losses.transform_output(o, lg.num_entries, lg.closeness, tf.stack([lg.seed, step]),
                                    replica, num_replicas)
        ctx = rules.ReverseContext([head["input_shape"]], training=training, options={},
                                   statistics=self._reverse_statistics)
        alpha = head["rule"].fn(head["layer"], t, ctx)
        for op in head["range_ops"]:
            alpha = op(alpha, ctx)
        o_hat = head["layer"](alpha)
        for layer in head["chain"]:
            o_hat = layer(o_hat, training=training) if layer._call_has_training_arg else layer(o_hat)
        return t, alpha, o_hat

    def _latent_term(self, y, y_pred, sample_weight, training):
        lg = self._latent
        # make_reversible passes `model.outputs`, a list: y_pred is then [o].
        o = tf.stop_gradient(tf.cast(keras.tree.flatten(y_pred)[0], tf.float32))
        step = tf.cast(self.optimizer.iterations, tf.int32) if self.optimizer else 0
        context = tf.distribute.get_replica_context()
        replica = context.replica_id_in_sync_group if context else 0
        _, _, o_hat = self._generate_latent(o, lg, step, training, replica, _num_replicas())
        o_hat = keras.tree.pack_sequence_as(self._outputs_struct, [o_hat])
        return lg.weight * self._compile_loss(y, o_hat, sample_weight)

    def _regularization_terms(self):
        ortho, other = [], []
        for v in self._regularized():
            (ortho if isinstance(v.regularizer, SRIP) else other).append(
                tf.cast(v.regularizer(v), tf.float32)
            )
        for layer in self._flatten_layers():
            other.extend(tf.cast(loss, tf.float32) for loss in layer._get_own_losses())
        scale = 1.0 / _num_replicas()
        return (
            tf.add_n(ortho) * scale if ortho else None,
            tf.add_n(other) * scale if other else None,
        )

    def _loss_terms(self, x, y, sample_weight, training):
        y_pred, taps = self._forward(x, training)
        terms = {}
        if self._compile_loss is not None:
            terms["task_loss"] = tf.cast(self._compile_loss(y, y_pred, sample_weight), tf.float32)
        terms["racecar_loss"] = self._racecar_term(taps, training)
        if self._latent is not None:
            terms["latent_loss"] = tf.cast(
                self._latent_term(y, y_pred, sample_weight, training), tf.float32
            )
        terms["ortho_loss"], terms["regularization_loss"] = self._regularization_terms()
        return y_pred, terms

    def _track(self, terms, x):
        batch = tf.shape(keras.tree.flatten(x)[0])[0]
        replicas = float(_num_replicas())
        total = tf.add_n([v for v in terms.values() if v is not None] or [tf.constant(0.0)])
        self._loss_tracker.update_state(total * replicas, sample_weight=batch)
        for name, value in terms.items():
            tracker = getattr(self, f"{name}_tracker", None)
            if tracker is not None and value is not None:  # an empty Mean reports 0
                tracker.update_state(value * replicas, sample_weight=batch)
        return total

    @staticmethod
    def _check_finite(x):
        """``x`` with a NaN/Inf check attached (the step must use the result)."""

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

    def _racecar_on(self):
        return self._depth > 0 and any(self._lambdas)

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if self._racecar_on():  # with λ = 0 the step costs what a standard one does
            x = self._check_finite(x)
        with tf.GradientTape() as tape:
            y_pred, terms = self._loss_terms(x, y, sample_weight, training=True)
            total = self._track(terms, x)
            scaled = self.optimizer.scale_loss(total) if self.optimizer else total
        variables = self.trainable_weights
        gradients = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(zip(gradients, variables))
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if self._racecar_on():
            x = self._check_finite(x)
        y_pred, terms = self._loss_terms(x, y, sample_weight, training=False)
        self._track(terms, x)
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    # ------------------------------------------------------------------
    # Inspection

    def _function(self, name, fn, *extra_signature):
        """``fn`` as a ``tf.function`` over the model's input signature, cached.

        The signature has a free batch axis (and the model's own free axes),
        so no call can relax or retrace it: the inputs are checked against
        the same shapes first (``_check_inputs``).
        """
        if name not in self._rev.functions:
            spec = keras.tree.map_structure(
                lambda t: tf.TensorSpec((None, *t.shape[1:]), t.dtype), self._inputs_struct)
            self._rev.functions[name] = tf.function(
                fn, input_signature=[spec, *extra_signature])
        return self._rev.functions[name]

    def _check_inputs(self, x, where, what="x"):
        """``x`` as a flat list of numpy arrays, checked against the model inputs.

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
        inputs = keras.tree.flatten(self.inputs)
        if len(inputs) == 1:
            if isinstance(x, (list, tuple)) and x and all(hasattr(t, "shape") for t in x):
                flat = list(x)  # arrays, one per input (as Keras reads a list of arrays)
            elif isinstance(x, dict) and len(x) == 1:
                flat = list(x.values())
            else:
                flat = [x]  # an array, a tensor or nested lists of numbers
        elif isinstance(x, dict) and isinstance(self._inputs_struct, dict):
            if set(x) != set(self._inputs_struct):
                raise ValueError(f"{where}: {what} has the keys {sorted(x)}; the model's "
                                 f"inputs are {sorted(self._inputs_struct)}.")
            flat = keras.tree.flatten(x)
        elif isinstance(x, (list, tuple)):
            flat = list(x)
        else:
            flat = [x]
        if len(flat) != len(inputs):
            raise ValueError(
                f"{where}: model '{self.name}' has {len(inputs)} inputs "
                f"({', '.join(repr(graph_lib.producer(t)[0].name) for t in inputs)}); "
                f"{what} holds {len(flat)}.")
        arrays, sizes = [], []
        for value, t in zip(flat, inputs):
            name = graph_lib.producer(t)[0].name
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
            arrays.append(a.astype(t.dtype, copy=False))
            sizes.append(a.shape[0])
        if len(set(sizes)) > 1:
            raise ValueError(f"{where}: the inputs of {what} have different batch sizes "
                             f"{sizes} (for {', '.join(repr(graph_lib.producer(t)[0].name) for t in inputs)}).")
        if sizes[0] == 0:
            raise ValueError(f"{where}: {what} is empty (0 examples): no batches to run.")
        return arrays

    def _batches(self, x, batch_size, where):
        """Checked batches of ``x`` (arrays or a ``tf.data.Dataset``), each a flat list.

        A dataset is used as batched; an element ``(x, y[, w])`` gives its ``x``.
        """
        _check_batch_size(batch_size, where)
        if isinstance(x, tf.data.Dataset):
            count = 0
            for i, element in enumerate(x):
                if isinstance(element, tuple):
                    element = element[0]
                count += 1
                yield self._check_inputs(element, where, f"batch {i} of the dataset")
            if count == 0:
                raise ValueError(f"{where}: the dataset holds no batches.")
            return
        flat = self._check_inputs(x, where)
        for start in range(0, flat[0].shape[0], batch_size):
            yield [t[start:start + batch_size] for t in flat]

    def _batched(self, x, batch_size, fn, where):
        """Runs ``fn`` over checked batches of ``x``, returns numpy (nested) results."""
        pieces = []
        for chunk in self._batches(x, batch_size, where):
            chunk = keras.tree.pack_sequence_as(self._inputs_struct, chunk)
            pieces.append(keras.tree.map_structure(lambda t: np.asarray(t), fn(chunk)))
        return keras.tree.map_structure(lambda *ts: np.concatenate(ts, axis=0), *pieces)

    def reconstruct(self, x, batch_size=256, training=False):
        """The reverse pass back to input space (RN's x̄, racecar's ``I'``).

        Shape-only ops in front of the first weight layer (e.g. ZeroPadding)
        are reversed too, so the result has the shape of ``x``.

        Args:
            x: input batch (numpy, tensor or nested list), structured like
                the model inputs, or a ``tf.data.Dataset`` of batches (or of
                ``(x, y)`` tuples).
            batch_size: batch size for arrays (a positive int).
            training: run reverse BatchNormalization with batch statistics.

        Returns:
            numpy array(s) shaped like ``x``.

        Raises:
            ValueError: ``x`` does not fit the model's inputs (rank, static
                dimensions, batch sizes across inputs, empty).
            TypeError: ``x`` is not numeric, or ``batch_size`` not an int.
        """

        def run(xb):
            _, taps = self._forward(xb, training)
            rev = self._reverse(taps, training)
            out = [rev[graph_lib.key(t)] for t in keras.tree.flatten(self.inputs)]
            return out[0] if len(out) == 1 else out

        _check_bool(training, "training", "reconstruct")
        fn = self._function(f"reconstruct_{bool(training)}", run)
        return self._batched(x, batch_size, fn, "reconstruct")

    def reverse_activations(self, x, batch_size=256, training=False, depth=None):
        """The pairs ``(L_m, L'_m)`` for ``m = 1..depth``, forward order.

        Args:
            x: input batch, or a ``tf.data.Dataset`` (as for ``reconstruct``).
            batch_size: batch size for arrays (a positive int).
            training: reverse BatchNormalization with batch statistics.
            depth: how many points (an int); default the model's ``depth``
                (``s``). Up to ``num_constrained``: a model trained with
                fewer constrained points (or none, ``Std``) can still be
                probed.

        Returns:
            list of ``(L_m, L'_m)`` numpy pairs.

        Raises:
            ValueError: ``depth`` above ``num_constrained``, or ``x`` does not
                fit the model's inputs.
            TypeError: ``depth`` is not an int (a bool is refused).
        """
        _check_bool(training, "training", "reverse_activations")
        training = bool(training)
        depth = self._depth if depth is None else depth
        if isinstance(depth, bool) or not isinstance(depth, numbers.Integral):
            raise TypeError(f"reverse_activations: depth must be an int or None, got "
                            f"{type(depth).__name__}: {depth!r}.")
        if not 0 <= depth <= self.num_constrained:
            raise ValueError(
                f"reverse_activations: depth must be in [0, {self.num_constrained}], got {depth}."
            )
        keys = self._rev.reverse.constrained[:depth]
        if not keys:
            _check_batch_size(batch_size, "reverse_activations")
            if not isinstance(x, tf.data.Dataset):
                self._check_inputs(x, "reverse_activations")
            return []

        def run(xb):
            _, taps = self._forward(xb, training)
            rev = self._reverse(taps, training)
            return [[taps[k] for k in keys], [rev[k] for k in keys]]

        fn = self._function(f"activations_{training}_{depth}", run)
        forward, reverse = self._batched(x, batch_size, fn, "reverse_activations")
        return list(zip(forward, reverse))

    def calibrate_reverse_statistics(self, x, batch_size=256):
        """Sets the reverse BN moving statistics to their averages over ``x``.

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

        Returns:
            The number of batches averaged (0 when the reverse pass has no
            BatchNormalization; ``x`` is checked all the same, a dataset's
            batches only when there are statistics to compute).

        Raises:
            ValueError: ``x`` does not fit the model's inputs or is empty,
                holds NaN or Inf, or gives non-finite statistics.

        Example:

        ```python
        model.calibrate_reverse_statistics(x_train[:2048])
        x_bar = model.reconstruct(x_test)
        ```
        """
        where = "calibrate_reverse_statistics"
        stats = self._reverse_statistics
        batches = self._batches(x, batch_size, where)
        if not isinstance(x, tf.data.Dataset):
            batches = list(batches)  # every array checked before any work
        if not len(stats):
            if isinstance(x, tf.data.Dataset):
                next(iter(batches))  # the first batch is checked
            return 0
        reverse = self._rev.reverse

        def run(xb, momentum):
            stats.momentum = momentum
            try:
                _, taps = self._forward(xb, False)
                reverse.run(taps[graph_lib.key(reverse.start)], taps, training=True,
                            statistics=stats, update_statistics=True)
            finally:
                stats.momentum = None
            return tf.constant(0)

        fn = self._function(where, run, tf.TensorSpec((), tf.float32))
        previous = [v.numpy() for v in stats.variables]
        count = 0
        try:
            for i, batch in enumerate(batches):
                if not all(np.isfinite(a).all() for a in batch if a.dtype.kind == "f"):
                    raise ValueError(
                        f"{where}: batch {i} of x contains NaN or Inf; the reverse "
                        "statistics were left as they were. Clean the data first.")
                # The k-th batch enters with weight 1/(k+1): a running mean.
                fn(keras.tree.pack_sequence_as(self._inputs_struct, batch),
                   tf.constant(count / (count + 1.0)))
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

    def call_with_racecar_loss(self, x, training=False):
        """The forward output and the weighted racecar loss, for custom training loops.

        ``fit`` adds the racecar loss itself; a loop that trains this model
        inside a larger objective (e.g. a GAN's generator) calls this under
        its own ``tf.GradientTape`` and adds the loss to its objective.

        Args:
            x: input batch.
            training: forward and reverse pass in training mode.

        Returns:
            ``(y_pred, loss)``: the model output and ``Σ_m λ_m D(L_m, L'_m)``
            as a float32 scalar tensor (0 when ``depth`` or every λ is 0),
            this replica's share under ``tf.distribute``, as in ``fit``.

        Example:

        ```python
        with tf.GradientTape() as tape:
            y_pred, racecar = model.call_with_racecar_loss(x, training=True)
            loss = tf.reduce_mean((y_pred - y) ** 2) + racecar
        grads = tape.gradient(loss, model.trainable_weights)
        ```
        """
        y_pred, taps = self._forward(x, training)
        term = self._racecar_term(taps, training)
        return y_pred, tf.constant(0.0) if term is None else term

    def generate_latent(self, x, batch_size=256, step=0):
        """RNL latent feature generation on ``x``, for inspection (RN fig. 3b).

        Runs the steps of RN algorithm 1 that the latent loss uses during
        training, with the model's ``latent_generation`` settings (the
        ``LatentGeneration`` defaults when it is off): the output ``o``,
        ``tr(o)``, the generated latent feature ``α̂`` (one tied step back
        through the last weight layer), ``ô`` (the last layer run forward on
        ``α̂``) and, when the reverse pass starts at the network output, the
        reconstructions of ``o`` and of ``tr(o)`` in input space: the latter
        is the reverse pass continued from ``α̂`` down to the input.

        Args:
            x: input batch, structured like the model inputs, or a
                ``tf.data.Dataset`` (as for ``reconstruct``).
            batch_size: batch size for arrays (a positive int).
            step: the training step (an int >= 0) whose random entry
                choice ``tr`` uses (during training the seed is ``(seed,
                optimizer step)``).

        Returns:
            dict of numpy arrays: ``output`` (o), ``transformed`` (tr(o)),
            ``latent`` (α̂), ``latent_output`` (ô) and, when ``reverse_from``
            is the network output, ``reconstruction`` (x̄ from o) and
            ``latent_reconstruction`` (x̄ from tr(o)).

        Example:

        ```python
        import zoo
        model = zoo.rn_baseline(latent_generation={"num_entries": 2})
        g = model.generate_latent(x)       # x: (n, 32, 32, 3)
        g["latent"].shape                  # (n, 256): α̂, the input of fc2
        ```
        """
        if isinstance(step, bool) or not isinstance(step, numbers.Integral):
            raise TypeError(f"generate_latent: step must be an int >= 0, got "
                            f"{type(step).__name__}: {step!r}.")
        if step < 0:
            raise ValueError(f"generate_latent: step must be an int >= 0, got {step}.")
        if self._rev.latent_head is None:
            self._rev.latent_head = self._find_latent_head(self._rev.reverse)
        lg = self._latent or losses.LatentGeneration()
        outputs = keras.tree.flatten(self.outputs)
        from_output = graph_lib.key(self._rev.reverse.start) == graph_lib.key(outputs[0])
        input_key = graph_lib.key(keras.tree.flatten(self.inputs)[0])

        def run(xb):
            y_pred, taps = self._forward(xb, False)
            o = tf.cast(keras.tree.flatten(y_pred)[0], tf.float32)
            t, alpha, o_hat = self._generate_latent(o, lg, tf.constant(step, tf.int32), False)
            out = {"output": o, "transformed": t, "latent": alpha, "latent_output": o_hat}
            if from_output:
                out["reconstruction"] = self._reverse(taps, False)[input_key]
                out["latent_reconstruction"] = self._reverse(taps, False, start=t)[input_key]
            return out

        fn = self._function(f"generate_latent_{step}", run)
        return self._batched(x, batch_size, fn, "generate_latent")

    def to_standard(self, keep_regularizers=True):
        """Phase II: a plain ``keras.Model`` with copies of the same weights.

        The result has no reverse pass and trains with the task loss only; it
        shares no variables with this model, so training it leaves the
        phase-I model unchanged.

        Args:
            keep_regularizers: False drops every layer's weight and activity
                regulariser (e.g. the ``Ort`` baseline's SRIP), so the copy
                trains with the task loss alone, as the racecar paper's
                phase II does.

        Example:

        ```python
        phase_two = model.to_standard(keep_regularizers=False)
        phase_two.compile("adam", "sparse_categorical_crossentropy")
        ```
        """
        plain = keras.Model(self.inputs, self.outputs, name=self.name)
        clone_function = None
        if not keep_regularizers:

            def clone_function(layer):
                config = {k: None if k.endswith("_regularizer") else v
                          for k, v in layer.get_config().items()}
                return layer.__class__.from_config(config)

        clone = keras.models.clone_model(plain, clone_function=clone_function)
        clone.set_weights(plain.get_weights())
        return clone

    def export(self, filepath, format="tf_saved_model", verbose=None,
               input_signature=None, overwrite=False, **kwargs):
        """Exports for inference; the SavedModel also serves the reverse pass.

        With ``format="tf_saved_model"`` the SavedModel has the endpoints
        ``serve`` (forward), ``reconstruct`` and ``reverse_activations``; see
        ``keras_reversible.export``. It is written atomically: an existing
        ``filepath`` is an error unless ``overwrite=True``, and a failed export
        leaves no partial folder. Other formats are ``keras.Model.export``'s
        (forward pass only), after the same ``overwrite`` check.
        """
        if format == "tf_saved_model":
            return export_lib.export_saved_model(
                self, filepath, overwrite=overwrite, verbose=verbose,
                input_signature=input_signature, **kwargs)
        export_lib.check_overwrite(filepath, overwrite)
        return super().export(filepath, format=format, verbose=verbose,
                              input_signature=input_signature, **kwargs)

    # ------------------------------------------------------------------
    # Serialization

    def save(self, filepath, overwrite=True, zipped=None, **kwargs):
        """``keras.Model.save``, written atomically.

        The file is written to a temporary sibling folder and renamed into
        place (``keras_reversible.export.atomic_write``), so a process killed
        while saving leaves the previous file intact; a later save removes
        the temporary folder it left. An existing ``filepath`` with
        ``overwrite=False`` is an error (``FileExistsError``), not a prompt.
        Remote paths (``gs://...``) and ``zipped=False`` folders are
        ``keras.Model.save``'s own, not atomic.
        """
        path = os.fspath(filepath)
        if "://" in path or zipped is False:
            return super().save(filepath, overwrite=overwrite, zipped=zipped, **kwargs)
        export_lib.check_overwrite(path, overwrite)
        return export_lib.atomic_write(
            path, lambda tmp: keras.Model.save(self, tmp, zipped=zipped, **kwargs))

    def save_weights(self, filepath, overwrite=True, max_shard_size=None):
        """``keras.Model.save_weights``, written atomically (as ``save``).

        Sharded weights (``max_shard_size``) and remote paths are
        ``keras.Model.save_weights``' own, not atomic.
        """
        path = os.fspath(filepath)
        if "://" in path or max_shard_size is not None:
            return super().save_weights(filepath, overwrite=overwrite,
                                        max_shard_size=max_shard_size)
        export_lib.check_overwrite(path, overwrite)
        return export_lib.atomic_write(
            path, lambda tmp: keras.Model.save_weights(self, tmp))

    def load_own_variables(self, store):
        """Loads the reverse statistics; files saved without them keep defaults."""
        if len(store.keys()) == 0 and len(self._reverse_statistics):
            warnings.warn(
                f"Model '{self.name}' was saved without reverse BatchNormalization "
                "statistics; they keep their initial values (mean 0, variance 1). "
                "Call calibrate_reverse_statistics(x) before reconstructing in "
                "inference mode.", stacklevel=2)
            return
        super().load_own_variables(store)

    def get_config(self):
        config = super().get_config()
        settings = dict(self._settings)
        if callable(settings["input_range"]):
            settings["input_range"] = keras.activations.serialize(settings["input_range"])
        lg = settings["latent_generation"]
        if isinstance(lg, losses.LatentGeneration):
            settings["latent_generation"] = dataclasses.asdict(lg)
        config.update(settings)
        return config


def make_reversible(model, **settings):
    """Wraps a functional or Sequential Keras model as a ``ReversibleModel``.

    The result shares the layers (and so the weights) of ``model``.

    Args:
        model: a built functional ``keras.Model`` or ``keras.Sequential``.
        **settings: reversal settings of ``ReversibleModel`` (``depth``,
            ``racecar_weight``, ``reverse_from``, ``input_range``,
            ``reduction``, ``latent_generation``, ``max_pool_reverse``,
            ``upsample_reverse``).

    Returns:
        A ``ReversibleModel``.

    Raises:
        TypeError: ``model`` is not a functional or Sequential model (for
            example a subclassed model, whose graph cannot be walked), or an
            unknown keyword (the message names the closest setting).
        ValueError: see ``ReversibleModel``.

    Example:

    ```python
    base = keras.applications.VGG19(weights=None, input_shape=(32, 32, 3), classes=10)
    model = kr.make_reversible(base, reverse_from="block5_conv4", input_range="relu")
    ```
    """
    check_keywords("make_reversible", settings, SETTINGS + MODEL_KEYWORDS)
    if isinstance(model, keras.Sequential):
        if not model.built or not getattr(model, "inputs", None):
            raise ValueError(
                f"make_reversible: Sequential model '{model.name}' has no "
                "inputs yet; start it with keras.Input(shape) or build it."
            )
    elif not graph_lib.is_functional_graph(model):
        raise TypeError(
            f"make_reversible needs a functional or Sequential Keras model; "
            f"'{getattr(model, 'name', model)}' is a {type(model).__name__}, "
            "whose graph cannot be walked (a subclassed model has no symbolic "
            "graph). Rebuild it with the functional API: "
            "keras.Model(inputs, outputs)."
        )
    return ReversibleModel(model.inputs, model.outputs, name=model.name, **settings)
