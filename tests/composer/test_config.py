import pytest
from pydantic import ValidationError

from rapidnn.composer.config import ComposeConfig


def test_override_precedence_name_over_type_over_global():
    cfg = ComposeConfig(weight_clusters=16, overrides={
        "linear": {"weight_clusters": 8, "input_bits": 6},
        "fc2": {"weight_clusters": 4}})
    assert cfg.for_layer("fc1", "linear").weight_clusters == 8
    assert cfg.for_layer("fc1", "linear").input_bits == 6
    assert cfg.for_layer("fc2", "linear").weight_clusters == 4
    assert cfg.for_layer("fc2", "linear").input_bits == 6
    assert cfg.for_layer("conv1", "conv2d").weight_clusters == 16


def test_invalid_values_are_rejected():
    with pytest.raises(ValidationError):
        ComposeConfig(weight_clusters=0)
    with pytest.raises(ValidationError):
        ComposeConfig(overrides={"fc1": {"weight_clusters": 999}})
    with pytest.raises(ValidationError):
        ComposeConfig(overrides={"fc1": {"colour": "red"}})
    with pytest.raises(ValidationError, match="power-of-two"):
        ComposeConfig(tree=True, overrides={"fc1": {"input_clusters": 6}})


def test_unknown_override_key():
    cfg = ComposeConfig(overrides={"fc9": {"weight_clusters": 4}})
    with pytest.raises(ValueError, match="fc9"):
        cfg.check_overrides(["fc1", "fc2"])
    ComposeConfig(overrides={"conv2d": {}}).check_overrides(["fc1"])


def test_round_trips_through_json():
    cfg = ComposeConfig(per_channel=True, overrides={"fc1": {"weight_clusters": 4}})
    assert ComposeConfig(**cfg.model_dump(mode="json")) == cfg
