"""How much work a run does: one :class:`Budget`, chosen once and passed down.

A budget names the training recipes (each workload's full or reduced ``quick`` recipe: the
trained-model store keys on it), the data each step uses (test, validation and simulator
examples, retraining batches and rounds), the sweep grid and the audit's factor grid. The
command line picks one with ``--budget quick|full|FILE.yaml`` (``--quick`` is short for
``--budget quick``); every layer reads the field it needs, nothing re-derives a choice from a
flag. A budget file names a preset to start from and the fields it changes::

    base: quick          # or full (the default)
    test_images: 2000
    sweep_values: [4, 8, 16]

Presets (``docs/reproduce.md``): :data:`FULL`, the evaluation; :data:`QUICK`, a pipeline check
in minutes (reduced recipes, 1,000 test images, one retraining round, a {4, 16}² grid, every
third audit factor).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

RecipeSet = Literal["full", "quick"]
#: The recipe sets every workload has (``Workload.recipe`` and ``Workload.quick_recipe``).
RECIPE_SETS: tuple[RecipeSet, ...] = ("full", "quick")

class BudgetError(ValueError):
    """An unknown budget name, or a budget file that is missing, malformed or invalid."""


class Budget(BaseModel):
    """What a run spends (None = all of it).

    ``recipes``: which training recipe of each workload (``"full"`` or ``"quick"``);
    ``test_images``: test examples for float and composed accuracy (both on the same ones);
    ``val_images``: validation examples checked by retraining; ``train_batches``: training
    batches per retraining round (None: one epoch); ``max_rounds`` / ``min_rounds``: retraining
    rounds at most / at least (at least one: a point the experiments retrain is fine-tuned);
    ``sim_images`` / ``approx_images``: test examples run on the accelerator simulator (exact /
    approximate-search sweep); ``sweep_values``: the w and u values ``reproduce`` sweeps;
    ``audit_stride``: the audit sweeps every n-th factor of its grid
    (:data:`rapidnn.hardware.audit.FACTORS`); ``fault_rates`` / ``fault_trials``: the device
    fault curves of ``reproduce`` (``rapidnn.experiments.faults``) on ``fault_images`` test
    examples (``fault_processing_images`` for processing-crossbar faults, simulated product by
    product).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "custom"
    recipes: RecipeSet = "full"
    test_images: int | None = Field(default=None, ge=1)
    val_images: int | None = Field(default=None, ge=1)
    train_batches: int | None = Field(default=None, ge=1)
    sim_images: int | None = Field(default=2000, ge=1)
    approx_images: int | None = Field(default=500, ge=1)
    max_rounds: int = Field(default=4, ge=0)
    min_rounds: int = Field(default=1, ge=0)
    sweep_values: tuple[int, ...] = (4, 8, 16, 32, 64)
    audit_stride: int = Field(default=1, ge=1)
    fault_rates: tuple[float, ...] = (0.0, 1e-4, 1e-3, 1e-2, 1e-1)
    fault_trials: int = Field(default=2, ge=1)
    fault_images: int | None = Field(default=300, ge=1)
    fault_processing_images: int | None = Field(default=32, ge=1)

    @field_validator("fault_rates")
    @classmethod
    def _rates(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if not v or any(not 0 <= x <= 1 for x in v):
            raise ValueError("must be a non-empty list of fault rates in [0, 1]")
        return tuple(sorted(set(v)))

    @field_validator("sweep_values")
    @classmethod
    def _cluster_counts(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or any(not 2 <= x <= 256 for x in v):
            raise ValueError("must be a non-empty list of cluster counts in [2, 256]")
        return tuple(sorted(set(v)))

    @property
    def quick(self) -> bool:
        """Whether the quick recipes are used (what ``results.json`` calls ``quick``)."""
        return self.recipes == "quick"

    def replace(self, **changes: Any) -> Budget:
        """A validated copy with some fields changed."""
        return Budget.model_validate({**self.model_dump(), **changes})

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def data_dict(self) -> dict[str, Any]:
        """The fields that decide a sweep point's numbers (a sweep resumes only under the same):
        the recipes and the data of each step, not the name, grid or audit factors."""
        return self.model_dump(mode="json", exclude={
            "name", "sweep_values", "audit_stride", "fault_rates", "fault_trials",
            "fault_images", "fault_processing_images"})


#: The evaluation: full recipes; rounds of 100 batches (12,800 CIFAR-10 images, about a quarter
#: epoch; 4 rounds bound a CIFAR-10 point to about 7 minutes of VGG retraining on two cores).
FULL = Budget(name="full", train_batches=100, max_rounds=4)
#: A pipeline check: quick recipes, data subsets, one round, a {4, 16}² grid, 5 audit factors.
QUICK = Budget(name="quick", recipes="quick", test_images=1000, val_images=500,
               train_batches=20, sim_images=128, approx_images=128, max_rounds=1,
               sweep_values=(4, 16), audit_stride=3, fault_rates=(0.0, 1e-3, 1e-2),
               fault_trials=1, fault_images=64, fault_processing_images=8)
BUDGETS: dict[str, Budget] = {"full": FULL, "quick": QUICK}


def get_budget(choice: str | Path | Budget) -> Budget:
    """A preset by name (``full``, ``quick``), a budget file by path, or a Budget unchanged."""
    if isinstance(choice, Budget):
        return choice
    if str(choice) in BUDGETS:
        return BUDGETS[str(choice)]
    path = Path(choice)
    if path.suffix not in (".yaml", ".yml", ".json"):
        raise BudgetError(f"unknown budget {str(choice)!r}: give {' or '.join(BUDGETS)} or a "
                          f".yaml budget file")
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise BudgetError(f"{path}: cannot read the budget file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise BudgetError(f"{path}: malformed YAML: {exc}") from None
    if not isinstance(data, dict):
        raise BudgetError(f"{path}: a budget file is a mapping of fields")
    base = data.pop("base", "full")
    if base not in BUDGETS:
        raise BudgetError(f"{path}: base: unknown budget {base!r} ({', '.join(BUDGETS)})")
    try:
        return BUDGETS[base].replace(name=data.pop("name", path.stem), **data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(x) for x in err["loc"])
        raise BudgetError(f"{path}: {key}: {err['msg']}") from None


def recipe_set(recipes: str) -> RecipeSet:
    """Check a recipe-set name (``"full"`` or ``"quick"``)."""
    if recipes not in RECIPE_SETS:
        raise ValueError(f"unknown recipe set {recipes!r} ({', '.join(RECIPE_SETS)})")
    return recipes  # type: ignore[return-value]
