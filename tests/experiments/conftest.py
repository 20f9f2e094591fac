"""A tiny isolet workload in a temporary store, single-threaded (shared by the experiment tests)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import rapidnn.workloads as workloads
from rapidnn.workloads import WORKLOADS, Recipe


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here runs single-threaded."""


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """The registry holds only isolet-mlp, with a tiny MLP and recipe; a temporary store."""
    from rapidnn.workloads.models import mlp

    recipe = Recipe(model="mlp-617-32-26", dataset="isolet", epochs=1, lr=1e-3, batch=64, val=1,
                    val_unit="speaker", train_subset=512)
    wl = dataclasses.replace(WORKLOADS["isolet-mlp"], factory=lambda: mlp((617, 32, 26)),
                             recipe=recipe, quick_recipe=recipe.replace(batch=128))
    monkeypatch.setattr(workloads, "WORKLOADS", {wl.name: wl})
    monkeypatch.setenv("RAPIDNN_STORE", str(tmp_path / "store"))
    return wl
