import pytest
import torch
from pydantic import ValidationError

from rapidnn.composer.config import ComposeConfig, LayerOptions, describe_errors


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


INT_FIELDS = ["weight_clusters", "input_clusters", "weight_bits", "input_bits", "acc_bits",
              "table_bits", "calibration_batches", "calibration_values", "seed"]
LAYER_INT_FIELDS = ["weight_clusters", "input_clusters", "weight_bits", "input_bits",
                    "table_bits"]


@pytest.mark.parametrize("field", INT_FIELDS)
@pytest.mark.parametrize("value", [True, False])
def test_a_bool_is_no_integer(field, value):
    with pytest.raises(ValidationError, match="not a bool") as err:
        ComposeConfig(**{field: value})
    assert describe_errors(err.value).startswith(f"{field}: ")


@pytest.mark.parametrize("field", LAYER_INT_FIELDS)
def test_a_bool_is_no_integer_in_an_override(field):
    with pytest.raises(ValidationError) as err:
        ComposeConfig(overrides={"fc1": {field: True}})
    assert describe_errors(err.value) == (f"overrides.fc1.{field}: expected an integer, not a "
                                          f"bool (got True)")


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [({"calibration_values": float("nan")}, "calibration_values: "),
     ({"calibration_batches": -1}, "calibration_batches: "),
     ({"weight_bits": 2.5}, "weight_bits: "),
     ({"seed": 2**64}, "seed: "),
     ({"seed": -(2**63) - 1}, "seed: "),
     ({"tree": True, "input_clusters": 6}, "power-of-two")],
)
def test_other_bad_numbers_name_their_field(kwargs, fragment):
    with pytest.raises(ValidationError) as err:
        ComposeConfig(**kwargs)
    assert fragment in describe_errors(err.value)


def test_valid_numbers_are_unchanged():
    cfg = ComposeConfig(seed=-1, table_bits=None, calibration_batches=None, weight_clusters=2)
    assert (cfg.seed, cfg.table_bits, cfg.weight_clusters) == (-1, None, 2)


@pytest.mark.parametrize("kwargs", [
    {"weight_clusters": 4.0}, {"weight_clusters": "4"}, {"input_clusters": torch.tensor(4)},
    {"per_channel": 1}, {"tree": "yes"}, {"overrides": {"fc1": {"weight_bits": 6.0}}},
])
def test_options_are_strict_no_silent_coercion(kwargs):
    with pytest.raises(ValidationError) as err:
        ComposeConfig(**kwargs)
    assert next(iter(kwargs)) in describe_errors(err.value)
    assert ComposeConfig(overrides={"fc1": LayerOptions(weight_clusters=4)}) == \
        ComposeConfig(overrides={"fc1": {"weight_clusters": 4}})
