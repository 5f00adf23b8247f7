"""``ReversibleModel``: a functional Keras model trained with its reverse pass."""

import numbers
import os
import warnings

import keras
import tensorflow as tf

from keras_reversible import export as export_lib
from keras_reversible import files
from keras_reversible import nodes
from keras_reversible import inputs as inputs_lib
from keras_reversible import losses
from keras_reversible import terms as terms_lib
from keras_reversible.config import MODEL_KEYWORDS, SETTINGS, ReversalConfig, check_keywords
from keras_reversible.program import ReverseProgram


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
    of ``L_m``. At ``L_1`` the ``input_range`` op is applied. The reverse
    pass is the public ``reverse_program`` (``keras_reversible.ReverseProgram``).

    Training adds the racecar loss ``Σ_{m≤s} λ_m D(L_m, L'_m)`` (and RNL
    latent generation when enabled) to the compiled task loss. ``fit``
    reports every term: ``loss = task_loss + racecar_loss [+ latent_loss]
    [+ ortho_loss] [+ regularization_loss]``. A term whose weight is 0 is not
    computed and reports 0 (``keras_reversible.terms``).

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
        **kwargs: the reversal settings, keyword-only: ``depth``,
            ``racecar_weight``, ``reverse_from``, ``input_range``,
            ``reduction``, ``latent_generation``, ``max_pool_reverse``,
            ``upsample_reverse``, ``unknown_layers`` (``keras_reversible.ReversalConfig`` defines
            each one and its default; ``reversal_config`` holds them), and
            ``trainable`` for ``keras.Model`` (a functional model ignores its
            other keywords, so they are refused).

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

    def __init__(self, inputs, outputs, name=None, **kwargs):
        check_keywords(type(self).__name__, kwargs, SETTINGS + MODEL_KEYWORDS)
        settings = {k: kwargs.pop(k) for k in SETTINGS if k in kwargs}
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
        self._config = ReversalConfig(**settings)
        self._program = ReverseProgram(
            self, inputs_struct=self._inputs_struct, outputs_struct=self._outputs_struct,
            reverse_from=self._config.reverse_from, input_range=self._config.input_range_fn,
            options=self._config.options)
        lambdas = self._config.lambdas(self._program.num_constrained, self.name,
                                       [layer.name for layer in self._program.weight_layers])
        self._racecar = terms_lib.RacecarTerm(self._program, lambdas, self._config.reduction)
        latent = self._config.latent
        self._terms = [self._racecar,
                       *([terms_lib.LatentTerm(self._program, latent, self._outputs_struct)]
                         if latent else []),
                       *terms_lib.regularization_terms()]
        # Trackers are attributes named after their metric, as the saved files have them.
        self.task_loss_tracker = keras.metrics.Mean(name="task_loss")
        for term in self._terms:
            if term.reports(self.trainable_weights):
                setattr(self, f"{term.name}_tracker", keras.metrics.Mean(name=term.name))

    # ------------------------------------------------------------------
    # Properties

    @property
    def reverse_program(self):
        """The forward taps and the reverse pass (``keras_reversible.ReverseProgram``)."""
        return self._program

    @property
    def reversal_config(self):
        """The reversal settings (``keras_reversible.ReversalConfig``)."""
        return self._config

    @property
    def reversal_settings(self):
        """The reversal settings, as passed to the constructor (a dict)."""
        return self._config.as_dict()

    @property
    def depth(self):
        """``s``: the number of constrained points in the racecar loss."""
        return len(self._racecar.lambdas)

    @property
    def racecar_weights(self):
        """``λ_1 … λ_s`` as a list of floats."""
        return list(self._racecar.lambdas)

    @property
    def num_constrained(self):
        """How many constrained points the reverse path offers (max depth)."""
        return self._program.num_constrained

    @property
    def reverse_statistics(self):
        """The reverse BatchNormalization moving statistics (variables)."""
        return self._program.statistics.variables

    def reverse_summary(self, print_fn=None):
        """Prints the reverse program: layers, rules, constrained points."""
        (print_fn or print)(self._program.describe())

    # ------------------------------------------------------------------
    # Training

    def compute_loss_terms(self, x, y=None, sample_weight=None, training=False):
        """The forward output and every loss term of one batch.

        Args:
            x, y, sample_weight: the batch.
            training: forward and reverse pass in training mode.

        Returns:
            ``(y_pred, terms)``: ``terms`` maps each metric (``task_loss``,
            ``racecar_loss``, ``latent_loss`` when on, ``ortho_loss``,
            ``regularization_loss``) to this replica's share of its weighted
            value, a float32 scalar, or None when not computed. Their sum is
            the loss that ``fit`` minimises.
        """
        y_pred, taps = self._program.forward(x, training)
        terms = {}
        if self._compile_loss is not None:
            terms["task_loss"] = tf.cast(self._compile_loss(y, y_pred, sample_weight), tf.float32)
        data = terms_lib.StepData(
            y=y, y_pred=y_pred, sample_weight=sample_weight, taps=taps, training=training,
            task_loss=self._compile_loss, optimizer=self.optimizer,
            variables=self.trainable_weights,
            layer_losses=[tf.cast(loss, tf.float32) for layer in self._flatten_layers()
                          for loss in layer._get_own_losses()])
        for term in self._terms:
            terms[term.name] = term(data)
        return y_pred, terms

    def _track(self, terms, x):
        batch = tf.shape(keras.tree.flatten(x)[0])[0]
        replicas = float(terms_lib.num_replicas())
        total = tf.add_n([v for v in terms.values() if v is not None] or [tf.constant(0.0)])
        self._loss_tracker.update_state(total * replicas, sample_weight=batch)
        for name, value in terms.items():
            tracker = getattr(self, f"{name}_tracker", None)
            if tracker is not None and value is not None:  # an empty Mean reports 0
                tracker.update_state(value * replicas, sample_weight=batch)
        return total

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if self._racecar.enabled:  # with λ = 0 the step costs what a standard one does
            x = inputs_lib.check_finite(x)
        with tf.GradientTape() as tape:
            y_pred, terms = self.compute_loss_terms(x, y, sample_weight, training=True)
            total = self._track(terms, x)
            scaled = self.optimizer.scale_loss(total) if self.optimizer else total
        variables = self.trainable_weights
        gradients = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(zip(gradients, variables))
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if self._racecar.enabled:
            x = inputs_lib.check_finite(x)
        y_pred, terms = self.compute_loss_terms(x, y, sample_weight, training=False)
        self._track(terms, x)
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

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
        model = zoo.smoke_generator()
        x = np.random.default_rng(0).uniform(size=(2, 16, 16, 1)).astype("float32")
        y = np.random.default_rng(1).uniform(size=(2, 64, 64, 1)).astype("float32")
        with tf.GradientTape() as tape:
            y_pred, racecar = model.call_with_racecar_loss(x, training=True)
            loss = tf.reduce_mean((y_pred - y) ** 2) + racecar
        grads = tape.gradient(loss, model.trainable_weights)
        ```
        """
        y_pred, taps = self._program.forward(x, training)
        term = self._racecar.value(taps, training)
        return y_pred, tf.constant(0.0) if term is None else term

    # ------------------------------------------------------------------
    # Inspection: arrays or datasets in, numpy out (keras_reversible.inputs)

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
        inputs_lib.check_bool(training, "training", "reconstruct")
        program = self._program
        fn = program.inputs.function(f"reconstruct_{bool(training)}",
                                     lambda xb: program.reconstruct(xb, training))
        return program.inputs.map(fn, x, batch_size, "reconstruct")

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
        where = "reverse_activations"
        inputs_lib.check_bool(training, "training", where)
        training = bool(training)
        depth = self.depth if depth is None else depth
        program = self._program
        program.check_depth(depth, where)
        if depth == 0:
            inputs_lib.check_batch_size(batch_size, where)
            if not isinstance(x, tf.data.Dataset):
                program.inputs.check(x, where)
            return []
        fn = program.inputs.function(f"activations_{training}_{depth}",
                                     lambda xb: program.pairs(xb, depth, training))
        return program.inputs.map(fn, x, batch_size, where)

    def calibrate_reverse_statistics(self, x, batch_size=256):
        """Sets the reverse BN moving statistics to their averages over ``x``.

        A "precise BN" pass for the reverse pass (``ReverseProgram.calibrate``
        says how): use it after training with λ = 0 (the reverse statistics
        were never updated) or to replace the exponential averages of
        training by exact ones before measuring reconstructions. On any
        error the previous statistics are kept.

        Args:
            x: input array(s), or a ``tf.data.Dataset`` (as for ``reconstruct``).
            batch_size: batch size for arrays (a positive int).

        Returns:
            The number of batches averaged (0 without reverse BatchNormalization).

        Raises:
            ValueError: ``x`` does not fit the model's inputs or is empty,
                holds NaN or Inf, or gives non-finite statistics.

        Example:

        ```python
        model = zoo.reversible_resnet18(depth=0)  # trained without the reverse pass
        x = np.random.default_rng(0).uniform(size=(16, 32, 32, 3)).astype("float32")
        model.calibrate_reverse_statistics(x, batch_size=8)
        x_bar = model.reconstruct(x)
        ```
        """
        return self._program.calibrate(x, batch_size)

    def generate_latent(self, x, batch_size=256, step=0):
        """RNL latent feature generation on ``x``, for inspection (RN fig. 3b).

        Runs the steps of RN algorithm 1 that the latent loss uses in
        training (``ReverseProgram.latent_features``), with the model's
        ``latent_generation`` settings (the ``LatentGeneration`` defaults
        when it is off).

        Args:
            x: input batch, or a ``tf.data.Dataset`` (as for ``reconstruct``).
            batch_size: batch size for arrays (a positive int).
            step: the training step (an int >= 0) whose random entry
                choice ``tr`` uses.

        Returns:
            dict of numpy arrays: ``output`` (o), ``transformed`` (tr(o)),
            ``latent`` (α̂), ``latent_output`` (ô) and, when ``reverse_from``
            is the network output, ``reconstruction`` (x̄ from o) and
            ``latent_reconstruction`` (x̄ from tr(o)).

        Example:

        ```python
        model = zoo.rn_baseline(latent_generation={"num_entries": 2})
        x = np.random.default_rng(0).uniform(size=(4, 32, 32, 3)).astype("float32")
        g = model.generate_latent(x)
        g["latent"].shape                  # (4, 256): α̂, the input of fc2
        ```
        """
        if isinstance(step, bool) or not isinstance(step, numbers.Integral):
            raise TypeError(f"generate_latent: step must be an int >= 0, got "
                            f"{type(step).__name__}: {step!r}.")
        if step < 0:
            raise ValueError(f"generate_latent: step must be an int >= 0, got {step}.")
        program = self._program
        settings = self._config.latent or losses.LatentGeneration()
        fn = program.inputs.function(f"generate_latent_{step}",
                                     lambda xb: program.latent_features(xb, settings, step))
        return program.inputs.map(fn, x, batch_size, "generate_latent")

    # ------------------------------------------------------------------
    # Phase II, export, serialization

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
        model = zoo.racecar_mnist_cnn()
        phase_two = model.to_standard(keep_regularizers=False)  # a plain keras.Model
        phase_two.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
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

    def save(self, filepath, overwrite=True, zipped=None, **kwargs):
        """``keras.Model.save``, written atomically.

        The file is written to a temporary sibling folder and renamed into
        place (``keras_reversible.files.atomic_write``), so a process killed
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
        return files.atomic_write(
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
        return files.atomic_write(
            path, lambda tmp: keras.Model.save_weights(self, tmp))

    def load_own_variables(self, store):
        """Loads the reverse statistics; files saved without them keep defaults."""
        if len(store.keys()) == 0 and len(self._program.statistics):
            warnings.warn(
                f"Model '{self.name}' was saved without reverse BatchNormalization "
                "statistics; they keep their initial values (mean 0, variance 1). "
                "Call calibrate_reverse_statistics(x) before reconstructing in "
                "inference mode.", stacklevel=2)
            return
        super().load_own_variables(store)

    def get_config(self):
        return {**super().get_config(), **self._config.get_config()}


def make_reversible(model, **settings):
    """Wraps a functional or Sequential Keras model as a ``ReversibleModel``.

    The result shares the layers (and so the weights) of ``model``.

    Args:
        model: a built functional ``keras.Model`` or ``keras.Sequential``.
        **settings: reversal settings of ``ReversibleModel`` (``depth``,
            ``racecar_weight``, ``reverse_from``, ``input_range``,
            ``reduction``, ``latent_generation``, ``max_pool_reverse``,
            ``upsample_reverse``, ``unknown_layers``).

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
    elif not nodes.is_functional_graph(model):
        raise TypeError(
            f"make_reversible needs a functional or Sequential Keras model; "
            f"'{getattr(model, 'name', model)}' is a {type(model).__name__}, "
            "whose graph cannot be walked (a subclassed model has no symbolic "
            "graph). Rebuild it with the functional API: "
            "keras.Model(inputs, outputs)."
        )
    return ReversibleModel(model.inputs, model.outputs, name=model.name, **settings)
