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
