"""The README's Python API tour runs as written (issue 23): its ``python`` blocks, in order, in
one namespace, in an empty working folder, on the shipped MNIST MLP."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

import rapidnn
from rapidnn.workloads import WorkloadError, get_workload, pretrained

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Python API tour"


def tour_blocks(text: str) -> list[str]:
    """The ``python`` code blocks of the tour section (up to the next ``## `` heading)."""
    start = text.index(f"\n{SECTION}\n")
    end = text.find("\n## ", start + len(SECTION) + 1)
    section = text[start:end if end != -1 else len(text)]
    return re.findall(r"^```python\n(.*?)^```$", section, flags=re.M | re.S)


def test_the_tour_has_the_compose_and_the_simulate_blocks():
    blocks = tour_blocks(README.read_text())
    assert len(blocks) == 2
    assert "rapidnn.compose(" in blocks[0] and "rapidnn.simulate(" in blocks[1]


def test_the_python_api_tour_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "readme_tour"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript ONNX exporter
        for i, block in enumerate(tour_blocks(README.read_text())):
            exec(compile(block, f"README.md tour block {i + 1}", "exec"), namespace)
    assert (tmp_path / "mlp.rapidnn").is_file()
    assert namespace["composed"].layer_names() == ["1", "3", "5"]
    assert namespace["onnx"].layer_names() == ["node_1_Gemm", "node_3_Gemm", "node_5_Gemm"]
    again = rapidnn.load(tmp_path / "mlp.rapidnn")
    assert again.layer_names() == ["1", "3", "5"]
    swept = {row["parameter"] for row in namespace["report"]["sweep"]}
    assert {"rapidnn.rna_block.latency.nor_cycle", "rapidnn.tiles_per_chip"} <= swept
    assert namespace["report"]["smallest_rapidnn_changes"]["isaac.speedup"]["smallest"]


def test_pretrained_names_the_folders_it_searched(tmp_path):
    with pytest.raises(WorkloadError, match=f"no shipped mnist-mlp model .* in {tmp_path}"):
        pretrained("mnist-mlp", [tmp_path])
    (tmp_path / f"{get_workload('har-cnn').key()}.safetensors").write_bytes(
        b"not a model")
    with pytest.raises(WorkloadError, match="is not a har-cnn model"):
        pretrained("har-cnn", [tmp_path])
