"""Every zoo model: builds, runs forward and reverse, trains, saves, counts.

Parametrised over ``zoo.list_models()``, so a new entry is tested as soon as
it is registered. Families are tested at 32×32 (their CIFAR layouts); the
full ImageNet VGG-19 is built (not trained) for its parameter count.
"""

import os
import pathlib
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_reversible as kr
import zoo
from zoo import table

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
LOGITS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
PROBS = keras.losses.SparseCategoricalCrossentropy()

# Small, real settings per model for the functional tests (default: none).
TEST_KWARGS = {"reversible_vgg19": dict(num_classes=10, input_shape=(32, 32, 3))}

# float16 convolutions are slow on CPU (the full smoke generator takes ~40 s
# a step): the mixed_float16 step runs the same layers on smaller inputs,
# where the architecture allows (fully convolutional or global pooling).
MIXED_KWARGS = {
    "racecar_cifar_vgg": dict(input_shape=(16, 16, 3)),
    "reversible_densenet40": dict(input_shape=(16, 16, 3)),
    "reversible_resnet18": dict(input_shape=(16, 16, 3)),
    "smoke_discriminator": dict(input_shape=(16, 16, 2)),
    "smoke_generator": dict(input_shape=(4, 4, 1)),
}

# Task loss per model (softmax outputs take probabilities; others logits).
TASK_LOSS = {
    "racecar_cifar_vgg": LOGITS,
    "racecar_mi_net": LOGITS,
    "racecar_mnist_cnn": LOGITS,
    "reversible_cifar_resnet": PROBS,
    "reversible_densenet40": PROBS,
    "reversible_resnet18": PROBS,
    "reversible_vgg19": PROBS,
    "rn_baseline": PROBS,
    "smoke_discriminator": keras.losses.BinaryCrossentropy(from_logits=True),
    "smoke_generator": keras.losses.MeanSquaredError(),
}

# Variables allowed no gradient: a bias feeding straight into a
# BatchNormalization in training mode is cancelled by its mean subtraction,
# and these layers are not on the reverse path (the racecar head after
# I_r; the discriminator has no reverse pass), so nothing else reaches them.
NO_GRADIENT_OK = {
    "racecar_cifar_vgg": {"fc14/bias", "fc15/bias"},
    "smoke_discriminator": {f"conv{i}/bias" for i in range(1, 5)},
}

# Parameter counts (count_params: BN moving statistics included) at the
# constructors' default input_shape / num_classes.
#
# racecar_cifar_vgg (32×32×3, 10): convs 3·3·c_in·c_out + c_out, BN 4·c_out:
#   conv1 1,792 + conv2 36,928 + conv3 73,856 + conv4 147,584
#   + conv5 295,168 + conv6, conv7 590,080·2 = 1,180,160 + conv8 1,180,160
#   + conv9–13 2,359,808·5 = 11,799,040 → convs 14,714,688
#   BN after the convs: 4·(64·2 + 128·2 + 256·3 + 512·6) = 16,896
#   I_r is 2×2×512 = 2048: fc14 2048·4096 + 4096 = 8,392,704, BN 16,384
#   fc15 4096·4096 + 4096 = 16,781,312, BN 16,384; fc16 4096·10 + 10 = 40,970
#   total 14,714,688 + 16,896 + 8,392,704 + 16,384 + 16,781,312 + 16,384
#         + 40,970 = 39,979,338
# rn_baseline (32×32×3, 10): 5·5·c_in·c_out + c_out:
#   2,432 + 25,632 + 51,264 + 102,464 + 204,928 + 409,728 = 796,448;
#   fc1 2048·256 + 256 = 524,544; fc2 256·10 + 10 = 2,570 → 1,323,562
# smoke_generator: 1,664 + 204,928 + 409,728 + 204,864 + 51,232 + 801 = 873,217
# smoke_discriminator: convs 1,632 + 51,264 + 204,928 + 819,456 = 1,077,280,
#   BN 4·(32 + 64 + 128 + 256) = 1,920, fc5 64·64·256 + 1 = 1,048,577
#   → 2,127,777
EXACT_PARAMETERS = {
    "racecar_mi_net": 294,
    "racecar_mnist_cnn": 38_645,
    "racecar_cifar_vgg": 39_979_338,
    "rn_baseline": 1_323_562,
    # ResNet-20, option A: formula in tests/test_cifar_resnet.py.
    "reversible_cifar_resnet": 271_098,
    "smoke_generator": 873_217,
    "smoke_discriminator": 2_127_777,
    # keras.applications.VGG19 at 224×224×3, 1000 classes (racecar §5.4).
    "reversible_vgg19": 143_667_240,
}
PARAMETER_RANGES = {  # trainable parameters
    "reversible_resnet18": (11.1e6, 11.3e6),  # He et al. CIFAR ResNet-18: 11.17 M
    "reversible_densenet40": (0.98e6, 1.06e6),  # Huang et al.: 1.0 M
}


def _build(name, **kwargs):
    return zoo.get(name, **{**TEST_KWARGS.get(name, {}), **kwargs})


def _data(name, model, n=2):
    rng = np.random.default_rng(0)  # the same data whatever ran before in this worker
    x = rng.uniform(size=(n, *model.inputs[0].shape[1:])).astype("float32")
    out = model.outputs[0].shape
    if name == "smoke_generator":  # the 64×64 high-resolution frame
        y = rng.uniform(size=(n, *out[1:])).astype("float32")
    elif name == "smoke_discriminator":  # real / generated
        y = (np.arange(n) % 2).reshape(n, 1).astype("float32")
    else:
        y = (np.arange(n) % out[-1]).astype("int32")
    return x, y


def _compiled(name, **kwargs):
    model = _build(name, **kwargs)
    model.compile(keras.optimizers.SGD(1e-3), TASK_LOSS[name])
    return model


def _finite(history):
    return all(np.isfinite(v) for v in history.values())


def test_list_models_lists_every_constructor():
    assert zoo.list_models() == sorted([
        "racecar_cifar_vgg", "racecar_mi_net", "racecar_mnist_cnn",
        "reversible_cifar_resnet", "reversible_densenet40", "reversible_resnet18", "reversible_vgg19",
        "rn_baseline", "smoke_discriminator", "smoke_generator",
    ])
    for name in zoo.list_models():
        info = zoo.info(name)
        assert info.paper in ("racecar", "RN") and info.table
        assert info.reversible == (name != "smoke_discriminator")
        assert info.reversible == bool(info.reversal_defaults)


@pytest.mark.parametrize("name", zoo.list_models())
def test_parameter_count(name):
    info = zoo.info(name)
    if name in EXACT_PARAMETERS:
        assert info.parameters == EXACT_PARAMETERS[name]
    else:
        model = info.constructor()
        low, high = PARAMETER_RANGES[name]
        trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
        assert low <= trainable <= high, trainable
        network = keras.Model(model.inputs, model.outputs)  # without reverse statistics
        assert info.parameters == network.count_params()


@pytest.mark.parametrize("name", zoo.list_models())
def test_forward_reverse_train_gradients_and_round_trip(name, tmp_path):
    model = _compiled(name)
    assert isinstance(model, kr.ReversibleModel) == zoo.info(name).reversible
    x, y = _data(name, model)
    pred = model.predict(x, verbose=0)
    assert pred.shape == (len(x), *model.outputs[0].shape[1:])
    if isinstance(model, kr.ReversibleModel):
        assert model.reconstruct(x).shape == x.shape  # generator: 16×16×1 low-res
        defaults = zoo.info(name).reversal_defaults
        assert model.depth == defaults["depth"]
        for key in ("input_range", "reduction"):
            assert model.reversal_settings[key] == defaults[key]
    # Every trainable variable gets a gradient from the total loss (checked
    # before training: one SGD step on 2 samples can saturate a classifier).
    with tf.GradientTape() as tape:
        if isinstance(model, kr.ReversibleModel):
            _, terms = model.compute_loss_terms(x, y, None, training=True)
            total = tf.add_n([t for t in terms.values() if t is not None])
        else:
            total = TASK_LOSS[name](y, model(x, training=True))
    grads = tape.gradient(total, model.trainable_weights)
    missing = {
        v.path for v, g in zip(model.trainable_weights, grads)
        if g is None or not float(tf.reduce_max(tf.abs(tf.convert_to_tensor(g)))) > 0
    }
    assert missing <= NO_GRADIENT_OK.get(name, set()), missing - NO_GRADIENT_OK.get(name, set())
    history = model.fit(x, y, batch_size=len(x), epochs=1, verbose=0).history
    history = {k: v[0] for k, v in history.items()}
    assert _finite(history), history
    if isinstance(model, kr.ReversibleModel):
        assert history["racecar_loss"] > 0

    # .keras round trip of the trained model (its BN moving statistics moved),
    # then phase II's plain model: identical predictions and reconstructions.
    path = os.path.join(tmp_path, f"{name}.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is type(model)
    expected = model.predict(x, verbose=0)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), expected)
    if isinstance(model, kr.ReversibleModel):
        assert loaded.reversal_settings == model.reversal_settings
        np.testing.assert_array_equal(loaded.reconstruct(x), model.reconstruct(x))
        std = model.to_standard()
        assert type(std) is not kr.ReversibleModel
        np.testing.assert_array_equal(std.predict(x, verbose=0), expected)


@pytest.fixture
def mixed_float16():
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    yield
    keras.mixed_precision.set_global_policy(previous)


@pytest.mark.parametrize("name", zoo.list_models())
def test_mixed_float16_train_step(name, mixed_float16):
    model = _compiled(name, **MIXED_KWARGS.get(name, {}))
    assert model.compute_dtype == "float16"
    x, y = _data(name, model)
    history = model.fit(x, y, batch_size=len(x), epochs=1, verbose=0).history
    assert _finite({k: v[0] for k, v in history.items()}), history


def test_vgg19_layouts_follow_the_input_shape():
    cifar = zoo.reversible_vgg19(num_classes=10, input_shape=(32, 32, 3))
    assert cifar.reversal_settings["reverse_from"] == "block5_relu4"
    assert cifar.reversal_settings["racecar_weight"] == 1e-7
    assert cifar.depth == cifar.num_constrained == 16  # the head is after I_r
    assert 20.0e6 < cifar.count_params() < 20.1e6
    assert zoo.info("reversible_vgg19").parameters == 143_667_240  # 224×224×3, 1000


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
    table.main()
    assert capsys.readouterr().out.strip() == expected
