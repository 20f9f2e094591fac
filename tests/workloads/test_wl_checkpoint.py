"""Training checkpoints: a resumed fit ends bit-identical to an uninterrupted one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from rapidnn.workloads import Recipe
from rapidnn.workloads.checkpoint import (
    CheckpointError,
    TrainingState,
    load_checkpoint,
    write_checkpoint,
)
from rapidnn.workloads.fit import fit
from rapidnn.workloads.splits import AugmentedLoader, loader_generators


def _loader() -> AugmentedLoader:
    """Shuffled, augmented batches of 1x8x8 images: two generators to restore."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(48, 1, 8, 8, generator=g)
    y = (x.mean(dim=(1, 2, 3)) > 0.5).long()
    shuffled = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True,
                          generator=torch.Generator().manual_seed(1))
    return AugmentedLoader(shuffled, "crop4-flip", seed=2)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.ReLU(),
                               torch.nn.Dropout(0.3), torch.nn.BatchNorm1d(16),
                               torch.nn.Linear(16, 2))


def _round_trip(state: TrainingState, path: Path, key: str = "k") -> TrainingState:
    write_checkpoint(str(path), state, key)
    return load_checkpoint(path, key)


@pytest.mark.parametrize(("optimizer", "schedule"),
                         [("sgd", "cosine"), ("adam", "cosine"), ("sgd", "swa")])
def test_resumed_fit_is_identical_to_an_uninterrupted_one(optimizer: str, schedule: str,
                                                           tmp_path: Path) -> None:
    """Also with weight averaging: the running average travels in the checkpoint."""
    recipe = Recipe(model="m", dataset="mnist", epochs=4, lr=0.05, batch=16, val=0,
                    optimizer=optimizer, nesterov=True, weight_decay=1e-4, schedule=schedule)
    whole = _model()
    loader = _loader()
    assert len(loader_generators(loader)) == 2
    full_history = fit(whole, loader, recipe, generators=loader_generators(loader))

    states: list[TrainingState] = []
    first = _model()
    loader = _loader()
    fit(first, loader, recipe.replace(), generators=loader_generators(loader),
        on_epoch=states.append, max_steps=2 * len(loader) + 1)  # dies in epoch 3
    assert [s.epoch for s in states] == [1, 2]
    saved = _round_trip(states[-1], tmp_path / "ckpt.safetensors")

    resumed = _model()  # a fresh process: new model, new loader, same seeds
    loader = _loader()
    seen: list[TrainingState] = []
    history = fit(resumed, loader, recipe, generators=loader_generators(loader), resume=saved,
                  on_epoch=seen.append)
    assert history == full_history
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert [s.epoch for s in seen] == [3, 4] and seen[-1].resumed_at == [2]
    assert seen[-1].seconds >= saved.seconds


def test_a_checkpoint_of_another_entry_or_a_corrupt_file_is_refused(tmp_path: Path) -> None:
    recipe = Recipe(model="m", dataset="mnist", epochs=1, lr=0.05, batch=16, val=0)
    states: list[TrainingState] = []
    loader = _loader()
    fit(_model(), loader, recipe, generators=loader_generators(loader), on_epoch=states.append)
    path = tmp_path / "ckpt.safetensors"
    write_checkpoint(str(path), states[0], "mine")
    with pytest.raises(CheckpointError, match="not 'theirs'"):
        load_checkpoint(path, "theirs")
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(path, "mine")


def test_resume_with_a_different_loader_is_an_error(tmp_path: Path) -> None:
    recipe = Recipe(model="m", dataset="mnist", epochs=2, lr=0.05, batch=16, val=0)
    states: list[TrainingState] = []
    loader = _loader()
    fit(_model(), loader, recipe, generators=loader_generators(loader), on_epoch=states.append,
        max_steps=len(loader))
    with pytest.raises(ValueError, match="loader generator"):
        fit(_model(), loader, recipe, generators=(), resume=states[0])
