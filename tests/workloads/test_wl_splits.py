"""Train/validation/test splits: seeded, deterministic, disjoint; the demo's MNIST split."""

from __future__ import annotations

import pytest
import torch

from rapidnn import data
from rapidnn.workloads import WORKLOADS, Recipe
from rapidnn.workloads.splits import _val_indices, har_train_subjects, isolet_speakers


def _check_partition(tr: torch.Tensor, va: torch.Tensor, n: int) -> None:
    assert len(set(tr.tolist()) & set(va.tolist())) == 0
    assert sorted(tr.tolist() + va.tolist()) == list(range(n))


def test_example_split_is_seeded_and_disjoint() -> None:
    y = torch.arange(100) % 7
    r = Recipe(model="m", dataset="mnist", epochs=1, lr=1, batch=8, val=20)
    tr, va = _val_indices(r, y)
    _check_partition(tr, va, 100)
    assert len(va) == 20
    tr2, va2 = _val_indices(r, y)
    assert torch.equal(tr, tr2) and torch.equal(va, va2)
    _, va3 = _val_indices(r.replace(seed=1), y)
    assert not torch.equal(va, va3)


def test_per_class_split() -> None:
    y = torch.arange(60) % 3
    r = Recipe(model="m", dataset="isolet", epochs=1, lr=1, batch=8, val=4, val_unit="per_class")
    tr, va = _val_indices(r, y)
    _check_partition(tr, va, 60)
    assert torch.bincount(y[va]).tolist() == [4, 4, 4]


def test_isolet_speaker_split() -> None:
    wl = WORKLOADS["isolet-mlp"]
    y = torch.from_numpy(data.load("isolet", "train").y)
    speakers = isolet_speakers(y)
    assert speakers.min() == 0 and speakers.max() == 29
    assert torch.bincount(speakers).tolist() == [52] * 30  # 26 letters x 2 utterances
    tr, va = _val_indices(wl.recipe, y)
    _check_partition(tr, va, len(y))
    assert len(set(speakers[va].tolist())) == 3
    assert not set(speakers[va].tolist()) & set(speakers[tr].tolist())
    assert torch.bincount(y[va]).tolist() == [6] * 26
    s1, s2 = wl.splits(), wl.splits()
    assert s1.sizes() == {"train": 1404, "val": 156, "test": 1559}
    for a, b in zip(s1.train.tensors + s1.val.tensors, s2.train.tensors + s2.val.tensors,
                    strict=True):
        assert torch.equal(a, b)


def test_har_subject_split_and_standardisation() -> None:
    wl = WORKLOADS["har-cnn"]
    y = torch.from_numpy(data.load("har", "train").y)
    subjects = torch.from_numpy(har_train_subjects(len(y)))
    assert len(torch.unique(subjects)) == 21
    assert not set(subjects.tolist()) & data.HAR_TEST_SUBJECTS
    tr, va = _val_indices(wl.recipe, y)
    _check_partition(tr, va, len(y))
    assert len(set(subjects[va].tolist())) == 3
    assert not set(subjects[va].tolist()) & set(subjects[tr].tolist())
    sp = wl.splits()
    x = sp.train.tensors[0]
    assert x.shape[1:] == (6, 1, 128)
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(6), atol=1e-4)
    assert torch.allclose(x.std(dim=(0, 2, 3)), torch.ones(6), atol=1e-3)
    assert len(sp.test) == len(data.load("har", "test"))


@pytest.mark.parametrize("recipes", ["full", "quick"])
def test_train_loader_is_repeatable(recipes: str) -> None:
    sp = WORKLOADS["isolet-mlp"].splits(recipes)
    first = [y for _, y in sp.train_loader()]
    again = [y for _, y in sp.train_loader()]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    cal = sp.calibration(3)
    assert len(cal) == 3 and cal[0].shape == (sp.batch, 617)
