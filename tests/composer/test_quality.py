import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, TensorDataset

from rapidnn.composer.quality import paired_loss, predictions

labels_and_preds = st.integers(1, 300).flatmap(lambda n: st.tuples(
    *(st.lists(st.integers(0, 3), min_size=n, max_size=n) for _ in range(3))))


@settings(max_examples=60, deadline=None)
@given(labels_and_preds)
def test_paired_loss_is_the_accuracy_difference_with_the_paired_standard_error(data) -> None:
    y, f, c = (torch.tensor(v) for v in data)
    p = paired_loss(f, c, y)
    n = len(y)
    assert p.n == n
    assert p.float_accuracy == int((f == y).sum()) / n
    assert p.composed_accuracy == int((c == y).sum()) / n
    assert p.quality_loss == pytest.approx(p.float_accuracy - p.composed_accuracy)
    d = (f == y).double() - (c == y).double()  # per-example difference in {-1, 0, 1}
    expected = math.sqrt(float(d.var(unbiased=False)) / n)
    assert p.standard_error == pytest.approx(expected, abs=1e-12)
    assert p.to_dict()["quality_loss_se"] == p.standard_error


def test_identical_predictions_have_no_loss_and_no_error() -> None:
    y = torch.tensor([0, 1, 2, 1])
    pred = torch.tensor([0, 2, 2, 1])
    p = paired_loss(pred, pred.clone(), y)
    assert p.quality_loss == 0 and p.standard_error == 0
    assert p.float_only == p.composed_only == 0


def test_one_sided_disagreement() -> None:
    n = 10_000
    y = torch.zeros(n, dtype=torch.long)
    f = y.clone()
    c = y.clone()
    c[:100] = 1  # the composed model misses 100 examples the float model gets right
    p = paired_loss(f, c, y)
    assert p.quality_loss == pytest.approx(0.01)
    assert (p.float_only, p.composed_only) == (100, 0)
    assert p.standard_error == pytest.approx(math.sqrt(100 - 100**2 / n) / n)


def test_mismatched_or_empty_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="one length"):
        paired_loss(torch.zeros(3), torch.zeros(4), torch.zeros(3))
    with pytest.raises(ValueError, match="at least one"):
        paired_loss(torch.zeros(0), torch.zeros(0), torch.zeros(0))


def test_predictions_concatenate_batches() -> None:
    x = torch.randn(10, 3)
    y = torch.arange(10) % 3
    pred, labels = predictions(lambda t: t, DataLoader(TensorDataset(x, y), batch_size=4))
    assert torch.equal(pred, x.argmax(1)) and torch.equal(labels, y)
    with pytest.raises(ValueError, match="at least one"):
        predictions(lambda t: t, [])
