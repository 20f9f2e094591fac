"""The loader under a seeded fuzzer (tests/composer/fuzzing.py): a mutated file is either a clear
ModelFileError, the original model (bytes), or a consistent model (re-signed structural edits).
``benchmarks/fuzz_modelfile.py`` runs the same fuzzer with 10,000+ cases."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "accel"))
from fuzzing import make_samples, run_fuzz

CASES = 2000


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    return make_samples(tmp_path_factory.mktemp("fuzz"))


def test_every_mutated_file_is_a_clear_error_or_a_sound_model(samples, tmp_path):
    counts = run_fuzz(samples, CASES, seed=19, tmp=tmp_path)
    assert set(counts["bytes"]) <= {"error", "identical"}, counts["bytes"]
    assert set(counts["signed"]) <= {"error", "identical", "consistent"}, counts["signed"]
    assert sum(counts["bytes"].values()) + sum(counts["signed"].values()) == CASES
    # the mutations reach past the checksums and the schema: most are errors, some still load
    assert counts["signed"]["error"] > CASES // 4 and counts["signed"]["consistent"] > 0
