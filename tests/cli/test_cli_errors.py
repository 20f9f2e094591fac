"""The CLI's promise for bad input, command by command: exit status 2 and exactly one line
``error: ...`` on stderr (no traceback, no usage box), before any long work starts."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import rapidnn
from rapidnn.cli import app
from rapidnn.hardware.loader import preset_path
from rapidnn.workloads.models import mlp

runner = CliRunner()
LONG = "x" * 300  # longer than any file system's name limit (255 bytes)


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """A folder of good and bad inputs: a small model, corrupt files, bad YAML/JSON."""
    ws = tmp_path_factory.mktemp("cli-errors")
    torch.manual_seed(0)
    cm = rapidnn.compose(mlp((784, 16, 10)).eval(), [torch.rand(8, 1, 28, 28)], 4, 4)
    cm.metadata["dataset"] = "mnist"
    cm.save(ws / "m.rapidnn")
    data = (ws / "m.rapidnn").read_bytes()
    (ws / "truncated.rapidnn").write_bytes(data[: len(data) // 2])
    (ws / "empty.rapidnn").write_bytes(b"")
    (ws / "random.rapidnn").write_bytes(os.urandom(4096))
    (ws / "afile").write_text("a regular file\n")
    (ws / "adir").mkdir()
    os.mkfifo(ws / "fifo")
    (ws / "list.yaml").write_text("- a\n- b\n")
    (ws / "broken.yaml").write_text("name: [unclosed\n")
    isaac = preset_path("isaac").read_text()
    (ws / "negative.yaml").write_text(isaac.replace("read: {value: 30.0, unit: pJ",
                                                    "read: {value: -30.0, unit: pJ", 1))
    (ws / "zero-tiles.yaml").write_text(isaac.replace("value: 8, unit: \"1\"",
                                                      "value: 0, unit: \"1\"", 1))
    (ws / "nan-override.yaml").write_text("overrides:\n  crossbar.energy.read: .nan\n")
    (ws / "inf-sim.yaml").write_text("simulator:\n  nor_cycles_per_bit: .inf\n")
    (ws / "unknown-option.yaml").write_text("colour: blue\n")
    (ws / "results.json").write_text(json.dumps({"format": "rapidnn-reproduce-v2",
                                                 "workloads": [{"name": "x"}]}))
    (ws / "results-garbage.json").write_bytes(os.urandom(64))
    (ws / "budget.yaml").write_text("base: quick\ntest_images: -5\n")
    sweep = ws / "sweep-out"
    sweep.mkdir()
    (sweep / "sweep.json").write_text('{"format": "rapidnn-sweep-v1", "points": 7}')
    return ws


M = "{ws}/m.rapidnn"
CASES: dict[str, list[str]] = {
    # typer/click validation
    "no such command": ["teleport"],
    "unknown option": ["simulate", M, "--bogus"],
    "missing argument": ["simulate"],
    "limit 0": ["simulate", M, "--limit", "0"],
    "limit negative": ["simulate", M, "--limit", "-3"],
    "limit not a number": ["simulate", M, "--limit", "abc"],
    "limit nan": ["simulate", M, "--limit", "nan"],
    "limit inf": ["simulate", M, "--limit", "inf"],
    "limit not an integer": ["simulate", M, "--limit", "1.5"],
    "approx-bits negative": ["simulate", M, "--approx-bits", "-2"],
    "sweep max-rounds not an integer": ["sweep", "mnist-mlp", "--max-rounds", "0.5"],
    "retrain-limit negative": ["sweep", "mnist-mlp", "--retrain-limit", "-1"],
    "threads not a number": ["reproduce", "--threads", "many"],
    "approx-bits 0": ["simulate", M, "--approx-bits", "0"],
    "demo w 1": ["demo", "--weight-clusters", "1"],
    "demo max-rounds -1": ["demo", "--max-rounds", "-1"],
    "retrain-limit nan": ["sweep", "mnist-mlp", "--retrain-limit", "nan"],
    "retrain-limit inf": ["sweep", "mnist-mlp", "--retrain-limit", "inf"],
    "threads 0": ["train", "mnist-mlp", "--threads", "0"],
    # bad choices and values the commands check
    "strategy": ["simulate", M, "--strategy", "bogus"],
    "dataset": ["simulate", M, "--dataset", "bogus"],
    "objective": ["compare", M, "--objective", "bogus"],
    "hardware name": ["estimate", M, "--hardware", "bogus"],
    "workload": ["train", "bogus"],
    "sweep grid": ["sweep", "mnist-mlp", "--weight-clusters", "a,b"],
    "sweep grid zero": ["sweep", "mnist-mlp", "--weight-clusters", "0"],
    "retrain and search": ["sweep", "mnist-mlp", "--retrain", "--search",
                           "--out", "{ws}/new-sweep"],
    "budget name": ["train", "mnist-mlp", "--budget", "bogus"],
    "budget file": ["train", "mnist-mlp", "--budget", "{ws}/budget.yaml"],
    "quick and budget": ["audit", M, "--quick", "--budget", "full"],
    "reproduce workload": ["reproduce", "--workload", "bogus", "--out", "{ws}/new-results"],
    "export workload": ["store", "export", "bogus", "--out", "{ws}/new-export"],
    # bad paths
    "model missing": ["simulate", "{ws}/missing.rapidnn"],
    "model is a folder": ["estimate", "{ws}/adir"],
    "model under a file": ["compare", "{ws}/afile/m.rapidnn"],
    "model name too long": ["simulate", "{ws}/" + LONG],
    "hardware missing": ["hardware", "show", "{ws}/missing.yaml"],
    "hardware is a folder": ["hardware", "show", "{ws}/adir"],
    "config missing": ["estimate", M, "--config", "{ws}/missing.yaml"],
    "save into a folder": ["demo", "--save", "{ws}/adir"],
    "save onto a FIFO": ["demo", "--save", "{ws}/fifo"],
    "plot onto a FIFO": ["audit", M, "--quick", "--plot", "{ws}/fifo"],
    "empty dataset name": ["simulate", M, "--dataset", ""],
    "save under a file": ["demo", "--save", "{ws}/afile/m.rapidnn"],
    "save name too long": ["demo", "--save", "{ws}/" + LONG],
    "plot into a folder": ["audit", M, "--plot", "{ws}/adir"],
    "sweep out is a file": ["sweep", "mnist-mlp", "--out", "{ws}/afile"],
    "sweep out too long": ["sweep", "mnist-mlp", "--out", "{ws}/" + LONG],
    "reproduce out is a file": ["reproduce", "--out", "{ws}/afile"],
    "reproduce out under a file": ["reproduce", "--out", "{ws}/afile/results"],
    "report out is a file": ["report", "{ws}/results.json", "--out", "{ws}/afile"],
    "report input missing": ["report", "{ws}/missing.json"],
    "export out under a file": ["store", "export", "mnist-mlp", "--out", "{ws}/afile/x"],
    "import missing": ["store", "import", "{ws}/missing.safetensors"],
    "pretrained missing": ["reproduce", "--pretrained", "{ws}/missing", "--out",
                           "{ws}/new-results-2"],
    # bad files
    "model empty": ["simulate", "{ws}/empty.rapidnn"],
    "model random bytes": ["estimate", "{ws}/random.rapidnn"],
    "model truncated": ["compare", "{ws}/truncated.rapidnn"],
    "model is YAML": ["simulate", "{ws}/list.yaml"],
    "hardware not a mapping": ["hardware", "show", "{ws}/list.yaml"],
    "hardware broken YAML": ["estimate", M, "--hardware", "{ws}/broken.yaml"],
    "hardware negative energy": ["hardware", "show", "{ws}/negative.yaml"],
    "hardware zero count": ["estimate", M, "--hardware", "{ws}/zero-tiles.yaml"],
    "config not a mapping": ["estimate", M, "--config", "{ws}/list.yaml"],
    "config broken YAML": ["compare", M, "--config", "{ws}/broken.yaml"],
    "config NaN override": ["estimate", M, "--config", "{ws}/nan-override.yaml"],
    "config inf simulator": ["audit", M, "--config", "{ws}/inf-sim.yaml"],
    "config unknown option": ["estimate", M, "--config", "{ws}/unknown-option.yaml"],
    "results incomplete": ["report", "{ws}/results.json", "--out", "{ws}/new-report"],
    "results garbage": ["report", "{ws}/results-garbage.json", "--out", "{ws}/new-report"],
    "sweep.json hand-edited": ["sweep", "mnist-mlp", "--quick", "--out", "{ws}/sweep-out"],
    "import random file": ["store", "import", "{ws}/random.rapidnn"],
}


@pytest.mark.parametrize("args", CASES.values(), ids=CASES.keys())
def test_bad_input_is_one_error_line_and_exit_2(ws, args, monkeypatch, tmp_path):
    monkeypatch.setenv("RAPIDNN_STORE", str(tmp_path / "store"))
    result = runner.invoke(app, [a.format(ws=ws) for a in args])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "store").exists()  # failed before any training


def test_usage_errors_name_the_command_and_the_option(ws):
    result = runner.invoke(app, ["simulate", f"{ws}/m.rapidnn", "--limit", "0"])
    assert result.stderr.startswith("error: rapidnn simulate: Invalid value for '--limit'")
    assert result.stderr.rstrip().endswith("(see rapidnn simulate --help)")


def test_os_errors_name_the_path_and_the_reason(ws):
    result = runner.invoke(app, ["demo", "--save", f"{ws}/afile/m.rapidnn"])
    assert result.stderr.strip() == f"error: {ws}/afile: is a file, not a folder"
    result = runner.invoke(app, ["simulate", f"{ws}/{LONG}"])
    assert "File name too long" in result.stderr and len(result.stderr) < 400


def test_help_still_works():
    assert runner.invoke(app, ["--help"]).exit_code == 0
    assert runner.invoke(app, ["simulate", "--help"]).exit_code == 0
    result = runner.invoke(app, [])
    assert result.exit_code == 2 and "Usage" in result.output  # no command: the help


def test_json_output_is_standard_json(capsys):
    from rapidnn.cli.app import print_json

    print_json({"ratio": float("nan"), "more": [float("inf"), 1.5, torch.tensor(2.0)]})
    text = capsys.readouterr().out
    assert json.loads(text) == {"ratio": None, "more": [None, 1.5, 2.0]}
    assert "NaN" not in text and "Infinity" not in text


def test_store_list_shows_an_unreadable_entry_and_the_others(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    monkeypatch.setenv("RAPIDNN_STORE", str(tmp_path))
    for key, accuracy in (("good-000000000000", 0.9), ("bad-111111111111", "high")):
        save_file({"w": torch.zeros(1)}, str(tmp_path / f"{key}.safetensors"))
        info = {"key": key, "workload": key.split("-")[0], "test_accuracy": accuracy,
                "val_accuracy": 0.9}
        (tmp_path / f"{key}.json").write_text(json.dumps(info))
    result = runner.invoke(app, ["store", "list"])
    assert result.exit_code == 0, result.output
    assert "unreadable" in result.stdout and "good-000000000000" in result.stdout
    assert "field 'test_accuracy' must be a number" in result.stdout


def test_entry_points_go_through_the_handler(tmp_path):
    """``python -m rapidnn.cli`` and the ``rapidnn`` console script print the same one line."""
    script = Path(sys.executable).with_name("rapidnn")
    for command in ([sys.executable, "-m", "rapidnn.cli"], [str(script)]):
        done = subprocess.run([*command, "simulate", str(tmp_path / "m.rapidnn"), "--limit",
                               "0"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, (command, done.stderr)
        assert done.stderr.startswith("error: rapidnn simulate: Invalid value for '--limit'")
        assert len(done.stderr.splitlines()) == 1


def test_an_os_error_outside_a_commands_checks_is_one_line(monkeypatch):
    def full(obj):
        raise OSError(errno.ENOSPC, "No space left on device", "<stdout>")

    monkeypatch.setattr("rapidnn.cli.model.print_json", full)
    result = runner.invoke(app, ["hardware", "show", "isaac", "--json"])
    assert result.exit_code == 2
    assert result.stderr == "error: <stdout>: No space left on device\n"


def test_a_bug_stays_a_traceback(monkeypatch):
    def broken(spec):
        raise TypeError("a bug in our code")

    monkeypatch.setattr("rapidnn.hardware.chip_summary", broken)
    result = runner.invoke(app, ["hardware", "show", "isaac"])
    assert isinstance(result.exception, TypeError) and result.exit_code == 1


def test_a_nan_in_a_result_prints_null(monkeypatch):
    monkeypatch.setattr("rapidnn.hardware.chip_summary",
                        lambda spec: {"name": "x", "peak_gops": float("nan"),
                                      "power_w": float("-inf"), "area_mm2": 2.0})
    result = runner.invoke(app, ["hardware", "show", "isaac", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"name": "x", "peak_gops": None, "power_w": None,
                                         "area_mm2": 2.0}


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root writes into a read-only folder")
def test_an_unwritable_output_folder(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    result = runner.invoke(app, ["demo", "--save", str(locked / "m.rapidnn")])
    assert result.exit_code == 2
    assert result.stderr == f"error: {locked}: Permission denied\n"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_an_output_folder_is_tried_not_only_asked():
    """``os.access`` tells root /proc is writable; creating a file there is the real test (and
    fails before the demo trains)."""
    result = runner.invoke(app, ["demo", "--save", "/proc/m.rapidnn"])
    assert result.exit_code == 2 and result.stderr.startswith("error: /proc: ")


def test_a_symbolic_link_loop(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    result = runner.invoke(app, ["sweep", "mnist-mlp", "--out", str(tmp_path / "a" / "out")])
    assert result.exit_code == 2
    assert result.stderr == f"error: {tmp_path}/a/out: Too many levels of symbolic links\n"
