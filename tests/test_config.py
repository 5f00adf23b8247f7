"""ReversalConfig: the reversal settings' one definition, validation and serialisation."""

import dataclasses

import keras
import pytest

import keras_reversible as kr
from keras_reversible import config as config_lib


def test_defaults_are_defined_once_and_read_by_the_model():
    config = kr.ReversalConfig()
    assert config.depth is None and config.racecar_weight == 1.0 and config.reduction == "mean"
    assert config.max_pool_reverse == config_lib.DEFAULT_MAX_POOL_REVERSE == "upsample"
    assert config.upsample_reverse == config_lib.DEFAULT_UPSAMPLE_REVERSE == "max_pool"
    assert config_lib.SETTINGS == tuple(f.name for f in dataclasses.fields(kr.ReversalConfig))
    inputs = keras.Input((4,))
    model = kr.ReversibleModel(inputs, keras.layers.Dense(2)(inputs))
    assert model.reversal_config == config
    assert model.reversal_settings == config.as_dict()


def test_frozen_and_normalised():
    config = kr.ReversalConfig(racecar_weight=[1, 2])
    assert config.racecar_weight == (1.0, 2.0)
    assert config.as_dict()["racecar_weight"] == [1.0, 2.0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.depth = 3


@pytest.mark.parametrize("settings,error,match", [
    ({"reduction": "sum"}, ValueError, "reduction must be one of"),
    ({"max_pool_reverse": "up"}, ValueError, "max_pool_reverse must be one of"),
    ({"depth": 1.5}, TypeError, "depth must be an int"),
    ({"depth": -1}, ValueError, "depth must be >= 0"),
    ({"racecar_weight": "1"}, TypeError, "racecar_weight must be a float"),
    ({"racecar_weight": [1.0, float("nan")]}, ValueError, "finite and >= 0"),
    ({"reverse_from": 3}, TypeError, "reverse_from must be a layer name"),
    ({"input_range": "nope"}, ValueError, "unknown activation"),
    ({"latent_generation": {"closenes": 0.5}}, ValueError, "unknown keys"),
])
def test_validation_names_the_setting(settings, error, match):
    with pytest.raises(error, match=match):
        kr.ReversalConfig(**settings)


def test_lambdas_per_constrained_point():
    assert kr.ReversalConfig(racecar_weight=0.5).lambdas(3) == [0.5, 0.5, 0.5]
    assert kr.ReversalConfig(depth=2, racecar_weight=[1.0, 2.0]).lambdas(3) == [1.0, 2.0]
    assert kr.ReversalConfig(depth=0).lambdas(3) == []
    with pytest.raises(ValueError, match="racecar_weight has 2 entries but depth is 3"):
        kr.ReversalConfig(racecar_weight=[1.0, 2.0]).lambdas(3)
    with pytest.raises(ValueError, match="depth=4 but the reverse pass of model 'm'"):
        kr.ReversalConfig(depth=4).lambdas(3, "m", ["d1", "d2", "d3"])


def test_latent_off_at_weight_zero_and_get_config_serialises():
    assert kr.ReversalConfig(latent_generation={"weight": 0.0}).latent is None
    config = kr.ReversalConfig(input_range=keras.activations.tanh,
                               latent_generation=kr.LatentGeneration(num_entries=2))
    assert config.latent.num_entries == 2
    serialised = config.get_config()
    assert serialised["latent_generation"]["num_entries"] == 2
    assert kr.ReversalConfig(**serialised).input_range_fn is keras.activations.tanh


def test_unknown_keyword_names_the_closest():
    with pytest.raises(TypeError, match="did you mean 'racecar_weight'"):
        config_lib.check_keywords("f", {"racecar_weigth": 1}, config_lib.SETTINGS)
