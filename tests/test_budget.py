"""The budget: presets, budget files, and the one error a bad budget gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from rapidnn.budget import FULL, QUICK, Budget, BudgetError, get_budget, recipe_set


def test_presets() -> None:
    assert get_budget("full") is FULL and get_budget("quick") is QUICK
    assert QUICK.quick and not FULL.quick
    assert QUICK.sweep_values == (4, 16) and FULL.sweep_values == (4, 8, 16, 32, 64)
    assert get_budget(QUICK) is QUICK


def test_budget_file_starts_from_its_base(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("base: quick\ntest_images: 300\nsweep_values: [16, 4, 8, 4]\n")
    b = get_budget(path)
    assert b.name == "mine" and b.recipes == "quick" and b.test_images == 300
    assert b.sweep_values == (4, 8, 16)  # sorted, unique
    assert b.max_rounds == QUICK.max_rounds  # unchanged fields come from the base
    assert get_budget(str(path)) == b


@pytest.mark.parametrize(("text", "message"), [
    ("base: medium\n", "base: unknown budget 'medium'"),
    ("test_images: 0\n", "test_images"),
    ("sweep_values: [1, 4]\n", "sweep_values"),
    ("recipes: fast\n", "recipes"),
    ("colour: blue\n", "colour"),
    ("- 1\n- 2\n", "a mapping"),
    ("a: [1,\n", "malformed YAML"),
])
def test_bad_budget_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(BudgetError, match=message):
        get_budget(path)


def test_unknown_names_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(BudgetError, match="unknown budget 'medium'"):
        get_budget("medium")
    with pytest.raises(BudgetError, match="cannot read"):
        get_budget(tmp_path / "none.yaml")
    with pytest.raises(ValueError, match="unknown recipe set"):
        recipe_set(True)  # type: ignore[arg-type]


def test_replace_validates_and_data_dict_leaves_out_the_grid() -> None:
    with pytest.raises(ValueError):
        FULL.replace(max_rounds=-1)
    assert "sweep_values" not in QUICK.data_dict() and "recipes" in QUICK.data_dict()
    assert Budget().to_dict()["sim_images"] == 2000
