"""Single-threaded workload tests, and a tiny isolet workload (shared by the store tests)."""

from __future__ import annotations

import dataclasses

import pytest

import rapidnn.workloads as workloads
from rapidnn.workloads import WORKLOADS, Recipe


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here runs single-threaded."""


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch):
    """isolet-mlp with a tiny recipe (1 epoch on 512 examples), registered under its name."""
    from rapidnn.workloads.models import mlp

    recipe = Recipe(model="mlp-617-32-26", dataset="isolet", epochs=1, lr=1e-3, batch=64, val=1,
                    val_unit="speaker", train_subset=512)
    wl = dataclasses.replace(WORKLOADS["isolet-mlp"], factory=lambda: mlp((617, 32, 26)),
                             recipe=recipe, quick_recipe=recipe.replace(epochs=1, batch=128))
    monkeypatch.setattr(workloads, "WORKLOADS", {**WORKLOADS, wl.name: wl})
    return wl
