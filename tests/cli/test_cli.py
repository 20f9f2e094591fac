import json

from typer.testing import CliRunner

from rapidnn.cli import app

runner = CliRunner()


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "demo" in result.output and "hardware" in result.output


def test_hardware_show_json_keys():
    result = runner.invoke(app, ["hardware", "show", "isaac", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.output)
    for key in ("peak_gops", "area_mm2", "power_w", "gops_per_mm2", "gops_per_w"):
        assert key in data
    assert abs(data["power_w"] - 65.8) / 65.8 < 0.05


def test_hardware_show_table():
    result = runner.invoke(app, ["hardware", "show", "pipelayer"])
    assert result.exit_code == 0 and "gops_per_mm2" in result.output


def test_user_errors_exit_2_with_one_line(tmp_path):
    result = runner.invoke(app, ["hardware", "show", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error:")
    assert len(result.output.strip().splitlines()) == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    result = runner.invoke(app, ["hardware", "show", str(bad)])
    assert result.exit_code == 2 and "bad.yaml" in result.output


def test_invalid_option_exits_2():
    result = runner.invoke(app, ["demo", "--weight-clusters", "1"])
    assert result.exit_code == 2


def _model_file(tmp_path):
    import torch

    import rapidnn
    from rapidnn.workloads.models import mlp

    torch.manual_seed(0)
    cm = rapidnn.compose(mlp((784, 32, 10)).eval(), [torch.rand(16, 1, 28, 28)], 8, 8)
    cm.metadata["dataset"] = "mnist"
    path = tmp_path / "m.rapidnn"
    cm.save(path)
    return path


def test_simulate_estimate_compare_commands(tmp_path):
    path = str(_model_file(tmp_path))
    result = runner.invoke(app, ["simulate", path, "--limit", "300", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["images"] == 300 and data["agreement"] == 1.0
    assert data["totals"]["table_lookups"] == 784 * 32 + 32 * 10
    result = runner.invoke(app, ["simulate", path, "--limit", "300", "--approx-bits", "4"])
    assert result.exit_code == 0 and "approximate" in result.output
    result = runner.invoke(app, ["estimate", path, "--hardware", "isaac", "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["energy_j"] > 0
    result = runner.invoke(app, ["compare", path, "--json"])
    assert result.exit_code == 0
    out = json.loads(result.output)
    for policy in ("as-published", "iso-area", "iso-power", "filled", "precision-matched"):
        for name in ("isaac", "pipelayer", "gpu"):
            assert {"energy_efficiency", "speedup"} <= set(out["policies"][policy][name])
    assert 0 < out["rapidnn"]["row_occupancy"] <= 1
    blocks = {lay["name"]: lay["blocks"] for lay in out["rapidnn"]["layers"]}
    sim = json.loads(runner.invoke(app, ["simulate", path, "--limit", "10", "--json"]).output)
    traced = {lt["name"]: lt["blocks"] for lt in sim["trace"]["layers"] if lt["blocks"]}
    assert traced and all(blocks[k] == v for k, v in traced.items())
    result = runner.invoke(app, ["compare", path, "--objective", "latency"])
    assert result.exit_code == 0 and "row occupancy" in result.output


def test_model_command_errors(tmp_path):
    bad = tmp_path / "bad.rapidnn"
    bad.write_bytes(b"junk")
    for args in (["simulate", str(bad)], ["estimate", str(tmp_path / "none.rapidnn")],
                 ["compare", str(bad)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, args
        assert result.output.startswith("error:")
    path = str(_model_file(tmp_path))
    result = runner.invoke(app, ["simulate", path, "--strategy", "magic"])
    assert result.exit_code == 2
    result = runner.invoke(app, ["simulate", path, "--dataset", "isolet"])
    assert result.exit_code == 2 and "do not fit" in result.output
    cfg = tmp_path / "c.yaml"
    cfg.write_text("replication: sideways\n")
    result = runner.invoke(app, ["compare", path, "--config", str(cfg)])
    assert result.exit_code == 2 and "replication" in result.output


def test_audit_command(tmp_path):
    path = str(_model_file(tmp_path))
    plot = tmp_path / "tornado.png"
    result = runner.invoke(app, ["audit", path, "--quick", "--json", "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["paper"]["isaac"]["energy_efficiency"] == 68.4
    assert {"name", "description", "isaac", "pipelayer", "gpu"} <= set(data["scenarios"][0])
    assert plot.read_bytes()[:4] == b"\x89PNG"
    result = runner.invoke(app, ["audit", str(tmp_path / "none.rapidnn")])
    assert result.exit_code == 2 and result.output.startswith("error:")


def test_faults_command(tmp_path):
    path = str(_model_file(tmp_path))
    plot = tmp_path / "faults.png"
    result = runner.invoke(app, ["faults", path, "--limit", "60", "--trials", "1", "--rates",
                                 "0,1e-2", "--blocks", "table,am", "--protection", "tmr",
                                 "--plot", str(plot), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [c["block"] for c in data["curves"]] == ["table", "am"]
    assert {p["rate"] for p in data["curves"][0]["points"]} == {0.0, 0.01}
    assert data["endurance"]["lifetime_inferences"] > 0
    assert data["endurance"]["with_wear_levelling"]["lifetime_inferences"] >= \
        data["endurance"]["lifetime_inferences"]
    assert data["cost"]["table_protection"] == "tmr" and data["cost"]["area_ratio"] > 1
    assert plot.stat().st_size > 0
    for bad, word in [(["--rates", "0,2"], "--rates"), (["--blocks", "tables"], "--blocks"),
                      (["--protection", "ecc"], "--protection")]:
        result = runner.invoke(app, ["faults", path, *bad])
        assert result.exit_code == 2 and word in result.output, result.output
