"""Param / Component basics."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from rapidnn.hardware.components import TAGS, Component, Param


def p(value, unit="pJ", tag="published-secondary"):
    return Param(value=value, unit=unit, source="test", tag=tag)


def test_units_convert():
    assert p(1214, "fJ").to("pJ") == pytest.approx(1.214)
    assert p(20.7, "mW").si == pytest.approx(0.0207)
    assert p(0.0012, "mm2").to("um2") == pytest.approx(1200)
    with pytest.raises(ValueError):
        p(1, "ns").to("pJ")


@pytest.mark.parametrize("bad", [{"value": "1"}, {"value": True}, {"unit": "parsec"},
                                 {"tag": "recalled"}, {"source": ""}, {"extra": 1},
                                 {"value": 0.0}, {"value": -1.0}, {"value": float("nan")},
                                 {"value": 1.5, "unit": "bit"}, {"value": -1, "unit": "W"}])
def test_param_rejects(bad):
    data = {"value": 1.0, "unit": "pJ", "source": "s", "tag": "derived", **bad}
    with pytest.raises(ValidationError):
        Param.model_validate(data)


def test_tags_are_the_four():
    assert TAGS == ("published", "published-secondary", "derived", "assumed")


def test_scaled_and_replaced_are_assumed():
    q = p(8, "1").scaled(0.5)
    assert q.value == 4 and isinstance(q.value, int) and q.tag == "assumed"
    assert p(3, "1").scaled(0.5).value == 2  # integers stay integers >= 1
    r = p(1.5).replaced(2.0)
    assert r.value == 2.0 and r.tag == "assumed" and "was 1.5" in r.source
    with pytest.raises(ValueError, match=r"must be > 0 \(an energy\), got -2.0"):
        p(1.5).replaced(-2.0)
    with pytest.raises(ValueError, match=r"must be a finite number \(a time\)"):
        p(1.0, "ns").scaled(float("inf"))
    assert p(0, "W").replaced(0).value == 0  # a power may be 0


def test_component_actions_and_dimensions():
    c = Component(name="adc", energy={"convert": p(1.56)}, latency={"convert": p(0.78, "ns")},
                  area=p(0.0012, "mm2"), leakage=p(0, "W"))
    assert c.energy_j("convert") == pytest.approx(1.56e-12)
    assert c.latency_s("convert") == pytest.approx(0.78e-9)
    assert c.area_mm2 == pytest.approx(0.0012) and c.leakage_w == 0 and c.n == 1
    with pytest.raises(KeyError, match="no energy"):
        c.energy_j("read")
    with pytest.raises(ValidationError, match="not a unit of J"):
        Component(name="x", energy={"a": p(1, "ns")})
