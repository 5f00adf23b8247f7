"""Every zoo model, driven by its registry entry.

Parametrised over ``zoo.list_models()``: a new entry is tested as soon as it
is registered. The shared harness (``tests/reversible_harness.py``) runs on
each entry's ``test_input_shape`` with the entry's task loss, reversal
defaults and gradient exceptions; the parameter counts recorded in the
entries are checked against the models built at their defaults.
"""

import dataclasses
import inspect
import pathlib
import re

import keras
import numpy as np
import pytest

import keras_reversible as kr
import zoo
from reversible_harness import run_reversible_model_test
from zoo import registry, table

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
REVERSIBLE = [name for name in zoo.list_models() if zoo.info(name).reversible]


def run_entry(entry, build=None):
    """The shared harness on a zoo entry, at its test input, with a mixed-precision step.

    Args:
        entry: a ``zoo.ModelInfo``.
        build: the constructor (default: the registered one).

    Returns:
        The model the harness built and trained.
    """
    shape = entry.test_input_shape
    build = build or entry.constructor
    return run_reversible_model_test(
        lambda: build(input_shape=shape),
        shape,
        entry.task_loss,
        expected_settings=entry.reversal_defaults(shape),
        gradient_exceptions=entry.gradient_exceptions_for(shape),
        task_gradient_exceptions=entry.task_gradient_exceptions,
        run_mixed_precision_check=True,
    )


def test_list_models_lists_every_constructor():
    assert zoo.list_models() == sorted([
        "racecar_cifar_vgg", "racecar_mi_net", "racecar_mnist_cnn",
        "reversible_cifar_resnet", "reversible_densenet40", "reversible_resnet18", "reversible_vgg19",
        "reversible_vit",
        "rn_baseline", "smoke_discriminator", "smoke_generator",
    ])
    for name in zoo.list_models():
        entry = zoo.info(name)
        assert entry.name == name and entry.constructor.__name__ == name
        assert entry.paper in ("racecar", "RN") and entry.table
        assert entry.reversible == (name != "smoke_discriminator")


@pytest.mark.parametrize("name", zoo.list_models())
def test_zoo_model(name):
    model = run_entry(zoo.info(name))
    assert isinstance(model, kr.ReversibleModel) == zoo.info(name).reversible


@pytest.mark.parametrize("name", zoo.list_models())
def test_constructor_defaults_are_the_entry(name):
    entry = zoo.info(name)
    params = inspect.signature(entry.constructor).parameters
    assert params["input_shape"].default == entry.input_shape
    assert params["num_classes"].default == entry.num_classes
    for setting in entry.reversal_defaults():
        keyword = entry.keyword(setting)
        # Either a named parameter defaulting to the entry's value, or one of **reversal.
        if keyword in params:
            assert params[keyword].default == entry.reversal[setting], keyword
        else:
            assert any(p.kind == p.VAR_KEYWORD for p in params.values()), keyword


@pytest.mark.parametrize("name", REVERSIBLE)
def test_reversal_keywords_reach_the_model(name):
    """Each setting under the entry's keyword for it (``reverse_depth`` for the CIFAR ResNet)."""
    entry = zoo.info(name)
    model = zoo.get(name, input_shape=entry.test_input_shape,
                    **{entry.keyword("depth"): 0, entry.keyword("racecar_weight"): 0.5})
    assert model.depth == 0 and model.reversal_settings["racecar_weight"] == 0.5


@pytest.mark.parametrize("name", zoo.list_models())
def test_parameter_count(name):
    entry = zoo.info(name)
    model = entry.constructor()
    network = keras.Model(model.inputs, model.outputs)  # without the reverse statistics
    assert network.count_params() == entry.parameters
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    assert trainable == entry.trainable_parameters


def test_parameter_counts_match_the_papers():
    # Trainable parameters, as the papers count them.
    assert zoo.info("racecar_mi_net").parameters == 294  # racecar table 7
    assert zoo.info("racecar_mnist_cnn").parameters == 38_645  # racecar table 9
    assert 11.1e6 <= zoo.info("reversible_resnet18").trainable_parameters <= 11.3e6  # 11.17 M
    assert 0.98e6 <= zoo.info("reversible_densenet40").trainable_parameters <= 1.06e6  # 1.0 M
    assert zoo.info("reversible_vgg19").parameters == 143_667_240  # "ca. 143 million"


def test_vgg19_layouts_follow_the_input_shape():
    entry = zoo.info("reversible_vgg19")
    cifar = zoo.reversible_vgg19(num_classes=10, input_shape=(32, 32, 3))
    assert cifar.reversal_settings["reverse_from"] == "block5_relu4"
    assert cifar.reversal_settings["racecar_weight"] == 1e-7
    assert cifar.reversal_settings == {**cifar.reversal_settings,
                                       **entry.reversal_defaults((32, 32, 3))}
    assert entry.reversal_defaults()["reverse_from"] == "block5_conv4"
    assert entry.reversal_defaults((65, 65, 3))["racecar_weight"] == 1e-10
    assert entry.gradient_exceptions_for((64, 64, 3)) == ("predictions",)
    assert cifar.depth == cifar.num_constrained == 16  # the head is after I_r
    assert 20.0e6 < cifar.count_params() < 20.1e6


def test_resnet18_stems():
    small = zoo.reversible_resnet18(input_shape=(32, 32, 3))
    large = zoo.reversible_resnet18(num_classes=1000, input_shape=(224, 224, 3))
    assert "stem_pool" not in [layer.name for layer in small.layers]
    assert large.get_layer("stem_conv").strides == (2, 2)
    assert large.get_layer("stem_conv").kernel_size == (7, 7)
    assert large.get_layer("avg_pool").input.shape[1:3] == (7, 7)
    x = np.random.default_rng(0).uniform(size=(1, 224, 224, 3)).astype("float32")
    assert large.reconstruct(x).shape == x.shape


def test_readme_table_is_generated_from_the_registry(capsys):
    text = README.read_text()
    found = re.search(r"<!-- zoo-table:start -->\n(.*?)\n<!-- zoo-table:end -->", text, re.S)
    assert found, "README.md lost its zoo-table markers"
    expected = table.markdown_table()
    assert found.group(1).strip() == expected, (
        "README's zoo table is stale: paste the output of `python -m zoo.table` "
        "between the zoo-table markers."
    )
    assert "racecar_weight=1e-10 (1e-07 at ≤64 px)" in expected  # a value, rendered
    assert "reverse_depth=1" in expected  # the CIFAR ResNet's keyword for `depth`
    table.main()
    assert capsys.readouterr().out.strip() == expected


# --------------------------------------------------------------------------
# The harness fails on broken models: a tiny entry and constructors that
# honour it, or not.

TINY = registry.ModelInfo(
    name="tiny",
    paper="racecar",
    table="none",
    input_shape=(4,),
    num_classes=3,
    reversal=dict(depth=2, racecar_weight=0.1, reverse_from=None, input_range=None,
                  reduction="mean"),
    task_loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    test_input_shape=(4,),
    parameters=4 * 5 + 5 + 5 * 3 + 3,
    trainable_parameters=4 * 5 + 5 + 5 * 3 + 3,
    # The output is fc2's linear output: its reverse Wᵀ(y − b) cancels b.
    gradient_exceptions=("fc2/bias",),
)


def _tiny(entry, num_classes=3, input_shape=(4,), **reversal):
    inputs = keras.Input(input_shape)
    x = keras.layers.Dense(5, activation="tanh", name="fc1")(inputs)
    outputs = keras.layers.Dense(num_classes, name="fc2")(x)
    return kr.ReversibleModel(inputs, outputs, **entry.settings(input_shape, reversal))


def test_harness_passes_a_constructor_that_reads_its_entry():
    run_entry(TINY, build=lambda **kw: _tiny(TINY, **kw))


def test_harness_fails_when_a_recorded_default_is_not_the_constructors():
    def ignores_entry(**kw):  # records λ = 0.1, builds with 0.5
        return _tiny(TINY, racecar_weight=0.5, **kw)

    with pytest.raises(AssertionError, match=r"racecar_weight: 0\.5 != 0\.1"):
        run_entry(TINY, build=ignores_entry)


def test_harness_fails_on_an_unnamed_or_a_wrong_gradient_exception():
    # The reverse pass from fc1: the head fc2 gets no racecar gradient.
    headed = dataclasses.replace(TINY, gradient_exceptions=(), reversal={
        **TINY.reversal, "depth": 1, "reverse_from": "fc1"})
    with pytest.raises(AssertionError, match=r"not named as exceptions: \['fc2/bias', "
                                             r"'fc2/kernel'\]"):
        run_entry(headed, build=lambda **kw: _tiny(headed, **kw))
    run_entry(dataclasses.replace(headed, gradient_exceptions=("fc2",)),
              build=lambda **kw: _tiny(headed, **kw))
    wrong = dataclasses.replace(headed, gradient_exceptions=("fc*",))
    with pytest.raises(AssertionError, match=r"get a racecar gradient: \['fc1/bias', "
                                             r"'fc1/kernel'\]"):
        run_entry(wrong, build=lambda **kw: _tiny(wrong, **kw))
