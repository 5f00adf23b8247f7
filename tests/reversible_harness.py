"""One test of a whole reversible model, shared by the zoo and keras.applications tests.

``run_reversible_model_test`` builds a model and checks what every
``ReversibleModel`` promises (DESIGN §3): the reversal settings it reports,
``reconstruct`` and ``reverse_activations``, a racecar gradient on every
variable of the reverse path except the named exceptions, one finite ``fit``
step whose terms add up, a ``.keras`` round trip and phase II's plain model.
A plain ``keras.Model`` gets the checks that apply to it. Modelled on
keras-hub's ``TestCase.run_backbone_test``.
"""

import fnmatch
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

import keras_reversible as kr


def named(path, names):
    """Whether the variable ``path`` (``"layer/variable"``) is one of ``names``.

    A name matches the path or the path's layer (its first part), as an
    ``fnmatch`` pattern: ``"fc"``, ``"fc/bias"``, ``"conv*/bias"``.
    """
    layer = path.split("/")[0]
    return any(fnmatch.fnmatchcase(path, n) or fnmatch.fnmatchcase(layer, n) for n in names)


def _loss_name(task_loss):
    loss = keras.losses.get(task_loss) if isinstance(task_loss, str) else task_loss
    return getattr(loss, "name", None) or getattr(loss, "__name__", "")


def targets(task_loss, output_shape, n, rng):
    """Targets for ``task_loss`` and a model output of ``output_shape``.

    Sparse categorical losses get class ids ``0, 1, ...``; binary
    cross-entropy 0/1 labels; any other loss (a regression) uniform values
    of the output's shape.
    """
    name = _loss_name(task_loss)
    if "sparse_categorical" in name:
        return (np.arange(n) % output_shape[-1]).astype("int32")
    if "binary" in name:
        return (np.arange(n) % 2).reshape(n, *[1] * (len(output_shape) - 1)).astype("float32")
    return rng.uniform(size=(n, *output_shape[1:])).astype("float32")


def _single(outputs):
    flat = keras.tree.flatten(outputs)
    assert len(flat) == 1, f"expected one model output, got {len(flat)}"
    return flat[0]


def _vanishing(grad):
    return grad is None or not float(tf.reduce_max(tf.abs(tf.convert_to_tensor(grad)))) > 0


def _check_settings(model, expected_settings):
    reported = model.reversal_settings
    wrong = {k: (reported.get(k), v) for k, v in expected_settings.items() if reported.get(k) != v}
    assert not wrong, "reversal settings differ (setting: (model, expected)): " + ", ".join(
        f"{k}: {got!r} != {want!r}" for k, (got, want) in sorted(wrong.items()))


def _check_reverse(model, x):
    """reconstruct, reverse_activations and the reverse statistics."""
    x_bar = np.asarray(model.reconstruct(x))
    assert x_bar.shape == x.shape, (x_bar.shape, x.shape)
    assert np.all(np.isfinite(x_bar)), "reconstruct is not finite"
    pairs = model.reverse_activations(x)
    assert len(pairs) == model.depth, (len(pairs), model.depth)
    for m, (forward, reverse) in enumerate(pairs, start=1):
        assert np.shape(forward) == np.shape(reverse), (m, np.shape(forward), np.shape(reverse))
        assert np.all(np.isfinite(reverse)), f"L'_{m} is not finite"
    # A mean and a variance per BatchNormalization the reverse pass re-applies;
    # the model's weights are the network's and those.
    statistics = model.reverse_statistics
    norms = sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)
    assert len(statistics) % 2 == 0 and len(statistics) <= 2 * norms
    network = keras.Model(model.inputs, model.outputs)
    assert len(model.weights) == len(network.weights) + len(statistics)


def _check_gradients(model, x, y, task_loss, reversible, gradient_exceptions,
                     task_gradient_exceptions):
    """Racecar gradients (exactly the exceptions get none) and task gradients."""
    loss_fn = keras.losses.get(task_loss) if isinstance(task_loss, str) else task_loss
    with tf.GradientTape(persistent=True) as tape:
        if reversible:
            y_pred, racecar = model.call_with_racecar_loss(x, training=True)
        else:
            y_pred, racecar = model(x, training=True), None
        task = loss_fn(y, _single(y_pred))
    variables = model.trainable_weights
    task_grads = tape.gradient(task, variables)
    racecar_grads = tape.gradient(racecar, variables) if reversible else None
    del tape
    no_task = sorted(v.path for v, g in zip(variables, task_grads) if _vanishing(g))
    unexpected = [p for p in no_task if not named(p, task_gradient_exceptions)]
    assert not unexpected, f"no task-loss gradient, not named as exceptions: {unexpected}"
    if not reversible or not (model.depth and any(model.racecar_weights)):
        return
    without = {v.path for v, g in zip(variables, racecar_grads) if _vanishing(g)}
    paths = {v.path for v in variables}
    excepted = {p for p in paths if named(p, gradient_exceptions)}
    assert without <= excepted, (
        f"no racecar gradient, not named as exceptions: {sorted(without - excepted)}")
    assert excepted <= without, (
        f"named as racecar-gradient exceptions but get a racecar gradient: "
        f"{sorted(excepted - without)}")
    unmatched = [n for n in gradient_exceptions if not any(named(p, [n]) for p in paths)]
    assert not unmatched, f"gradient exceptions naming no variable: {unmatched}"


def _check_fit(model, x, y, task_loss, reversible):
    model.compile(keras.optimizers.SGD(1e-3), task_loss)
    history = model.fit(x, y, batch_size=len(x), epochs=1, verbose=0).history
    history = {k: v[0] for k, v in history.items()}
    assert all(np.isfinite(v) for v in history.values()), history
    if reversible:
        terms = {k: v for k, v in history.items() if k.endswith("_loss")}
        assert np.isclose(history["loss"], sum(terms.values()), rtol=1e-5), history
        if model.depth and any(model.racecar_weights):
            assert history["racecar_loss"] > 0, history
        else:
            assert history["racecar_loss"] == 0, history


def _check_round_trip(model, x, reversible, directory):
    """``.keras`` round trip of the trained model (its BN moving statistics
    moved), then phase II's plain model: identical outputs."""
    path = os.path.join(directory, f"{model.name}.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is type(model)
    expected = model.predict(x, verbose=0)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), expected)
    if reversible:
        assert loaded.reversal_settings == model.reversal_settings
        np.testing.assert_array_equal(loaded.reconstruct(x), model.reconstruct(x))
        standard = model.to_standard()
        assert type(standard) is not kr.ReversibleModel
        np.testing.assert_array_equal(standard.predict(x, verbose=0), expected)


def _check_mixed_precision(build, x, y, task_loss):
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build()
        assert model.compute_dtype == "float16"
        model.compile(keras.optimizers.SGD(1e-3), task_loss)
        history = model.fit(x, y, batch_size=len(x), epochs=1, verbose=0).history
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert all(np.isfinite(v[0]) for v in history.values()), history


def run_reversible_model_test(
    model,
    input_shape,
    task_loss,
    *,
    expected_settings=None,
    num_constrained=None,
    gradient_exceptions=(),
    task_gradient_exceptions=(),
    batch_size=2,
    run_mixed_precision_check=False,
    seed=0,
):
    """Builds a model and checks everything a reversible model promises.

    In order: the forward output's shape; for a ``ReversibleModel`` the
    reported reversal settings, ``num_constrained``, ``reconstruct`` (x's
    shape, finite), ``reverse_activations`` (``depth`` pairs of matching
    shapes) and the reverse statistics; the gradients before training
    (every trainable variable gets a task-loss gradient except
    ``task_gradient_exceptions``, and a racecar-loss gradient except exactly
    ``gradient_exceptions``); one ``fit`` step (finite terms that add up to
    ``loss``, ``racecar_loss > 0`` when the reverse pass is on); a ``.keras``
    save → load round trip and ``to_standard()`` with identical outputs;
    optionally one ``mixed_float16`` step on a fresh model.

    Args:
        model: a built ``keras.Model``, or a callable without arguments that
            builds one (needed for the mixed-precision check).
        input_shape: one sample's input shape; the inputs are uniform in
            [0, 1) (seeded).
        task_loss: a Keras loss (object or name); it also chooses the
            targets (see ``targets``).
        expected_settings: reversal settings the model must report, by
            setting name (e.g. a zoo entry's ``reversal_defaults``).
        num_constrained: the number of constrained points the model must offer.
        gradient_exceptions: names (``"layer"``, ``"layer/variable"``,
            ``fnmatch`` patterns) of the trainable variables that get no
            racecar-loss gradient by construction: the head after
            ``reverse_from``, a bias subtracted in its own layer, ...
            Exactly these must get none, and each name must match a variable.
        task_gradient_exceptions: names of variables allowed a vanishing
            task-loss gradient (a bias right before a BatchNormalization).
        batch_size: samples in the test batch.
        run_mixed_precision_check: also build the model under the
            ``mixed_float16`` policy and train one step.
        seed: seeds Keras, NumPy and Python before building, and the data.

    Returns:
        The model, trained one step, for further checks.

    Raises:
        AssertionError: a check failed (the message names what differs).
    """
    if isinstance(model, keras.Model):
        if run_mixed_precision_check:
            raise ValueError("run_mixed_precision_check needs a builder, not a built model.")
        built = model

        def build():
            return built
    else:
        build = model
    keras.utils.set_random_seed(seed)
    model = build()
    reversible = isinstance(model, kr.ReversibleModel)
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(batch_size, *input_shape)).astype("float32")
    output_shape = tuple(_single(model.outputs).shape)
    y = targets(task_loss, output_shape, batch_size, rng)

    prediction = _single(model.predict(x, verbose=0))
    assert prediction.shape == (batch_size, *output_shape[1:]), prediction.shape
    assert np.all(np.isfinite(prediction)), "the forward output is not finite"
    if reversible:
        _check_settings(model, expected_settings or {})
        if num_constrained is not None:
            assert model.num_constrained == num_constrained, model.num_constrained
        _check_reverse(model, x)
    else:
        assert not expected_settings and not gradient_exceptions, (
            "reversal settings or racecar-gradient exceptions given for a plain keras.Model")
    # Checked before training: one SGD step on two samples can saturate a classifier.
    _check_gradients(model, x, y, task_loss, reversible, gradient_exceptions,
                     task_gradient_exceptions)
    _check_fit(model, x, y, task_loss, reversible)
    with tempfile.TemporaryDirectory() as directory:
        _check_round_trip(model, x, reversible, directory)
    if run_mixed_precision_check:
        _check_mixed_precision(build, x, y, task_loss)
    return model
