"""The ``train``, ``sweep`` and ``reproduce`` commands (registered on a fresh typer app)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from rapidnn.cli.experiments import register

runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer(add_completion=False)
    register(app)
    return app


def test_commands_are_registered() -> None:
    result = runner.invoke(_app(), ["--help"])
    assert result.exit_code == 0
    for name in ("train", "sweep", "reproduce"):
        assert name in result.output


def test_retrain_limit_default_matches_the_library() -> None:
    import inspect

    from rapidnn.cli.experiments import sweep_cmd
    from rapidnn.experiments.sweep import RETRAIN_LIMIT

    default = inspect.signature(sweep_cmd).parameters["retrain_limit"].default
    assert default == pytest.approx(100 * RETRAIN_LIMIT)


@pytest.mark.parametrize("args", [
    ["sweep", "isolet-mlp", "--weight-clusters", "4,x"],
    ["sweep", "isolet-mlp", "--input-clusters", "4,1"],
    ["sweep", "no-such-workload", "--weight-clusters", "4", "--input-clusters", "4"],
    ["sweep", "isolet-mlp", "--retrain", "--search"],
    ["train", "no-such-workload"],
    ["reproduce", "--workload", "no-such-workload"],
    ["reproduce", "--pretrained", "/no/such/folder"],
    ["reproduce", "--budget", "medium"],
    ["reproduce", "--budget", "/no/such/budget.yaml"],
    ["reproduce", "--quick", "--budget", "full"],
    ["train", "isolet-mlp", "--budget", "medium"],
])
def test_user_errors_exit_2(args: list[str], tiny, tmp_path: Path) -> None:
    result = runner.invoke(_app(), [*args, *(["--out", str(tmp_path / "o")]
                                            if args[0] != "train" else [])])
    assert result.exit_code == 2, result.output
    assert result.output.strip().startswith("error:")
    assert len(result.output.strip().splitlines()) == 1


def test_train_then_load(tiny, tmp_path: Path) -> None:
    result = runner.invoke(_app(), ["train", "isolet-mlp", "--quick", "--json",
                                    "--threads", "1"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout[result.stdout.index("{"):])
    assert 0 <= info["test_accuracy"] <= 1 and Path(info["path"]).is_file()
    again = runner.invoke(_app(), ["train", "isolet-mlp", "--quick", "--threads", "1"])
    assert again.exit_code == 0
    assert "loaded from the store" in again.output and "cached at" in again.output


def test_sweep_options_change_is_an_error(tiny, tmp_path: Path) -> None:
    out = tmp_path / "sw"
    args = ["sweep", "isolet-mlp", "--weight-clusters", "4", "--input-clusters", "4",
            "--quick", "--threads", "1", "--out", str(out)]
    result = runner.invoke(_app(), args)
    assert result.exit_code == 0, result.output
    assert "smallest (w, u)" in result.output or "no (w, u) point" in result.output
    assert (out / "sweep.json").is_file() and (out / "pareto.png").is_file()
    result = runner.invoke(_app(), [*args[:3], "8", *args[4:]])
    assert result.exit_code == 2 and "other options" in result.output


def test_search_sweep_json_is_clean_stdout(tiny, tmp_path: Path) -> None:
    result = runner.invoke(_app(), ["sweep", "isolet-mlp", "--weight-clusters", "4,8",
                                    "--input-clusters", "8", "--search", "--retrain-limit",
                                    "100", "--max-rounds", "1", "--quick", "--threads", "1",
                                    "--out", str(tmp_path / "sw"), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)  # progress bars and log lines went to stderr
    assert doc["options"]["mode"] == "search" and doc["options"]["retrain_limit"] == 1.0
    assert all("search" in p for p in doc["points"])


def test_a_broken_sweep_file_is_a_user_error(tiny, tmp_path: Path) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "sweep.json").write_text('{"format": "rapidnn-sweep-v1", "options": [], '
                                    '"points": []}')
    result = runner.invoke(_app(), ["sweep", "isolet-mlp", "--weight-clusters", "4",
                                    "--input-clusters", "4", "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {out / 'sweep.json'}: field options: input "
                                    "should be a valid dictionary")
    assert len(result.output.strip().splitlines()) == 1
