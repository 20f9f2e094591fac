"""Layer names are module paths (issue 23): capture, overrides, the .rapidnn file, retraining,
the simulator and the hardware estimate all take them as they are."""

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import rapidnn
from rapidnn.composer.capture import capture, readable_names
from rapidnn.composer.manifest import FORMAT_VERSION
from rapidnn.composer.modelfile import read_model_file


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(4, 4, 3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.relu(self.conv1(x)) + x)  # relu called twice


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.layer1 = nn.Sequential(Block())
        self.head = nn.ModuleDict({"fc": nn.Linear(4, 3)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head["fc"](self.layer1(self.stem(x)).mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def net() -> nn.Module:
    torch.manual_seed(0)
    return Net().eval()


@pytest.fixture(scope="module")
def batches() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.rand(8, 1, 8, 8, generator=g) for _ in range(2)]


def test_module_calls_are_named_by_module_path_and_functions_by_fx():
    class Small(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())
            self.act = nn.ReLU()
            self.fc = nn.Linear(2 * 4 * 4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.act(self.act(self.features(x)))
            return self.fc(torch.flatten(x, 1) + 1.0)

    g = capture(Small().eval(), torch.rand(2, 1, 6, 6))
    assert [(n.name, n.op) for n in g] == [
        ("x", "input"), ("features.0", "conv2d"), ("features.1", "relu"), ("act", "relu"),
        ("act#2", "relu"), ("flatten", "reshape"), ("add", "offset"), ("fc", "linear"),
        ("output", "output")]
    assert g["act#2"].inputs == ["act"]


def test_names_are_unique_and_module_paths_win():
    # a module path taken by a function's fx name first, a module called three times, the
    # steps of one call, and characters a module path may hold that names do not
    names = readable_names(["flatten", "flatten_1", "m", "m_1", "m_2", "mean_pool", "mean",
                            "d_1"],
                           {"flatten_1": "flatten", "m": "a.m", "m_1": "a.m", "m_2": "a.m",
                            "d_1": "head.conv-1"},
                           {"mean_pool": ("mean", "pool")})
    assert names == {"flatten_1": "flatten", "m": "a.m", "m_1": "a.m#2", "m_2": "a.m#3",
                     "d_1": "head.conv_1", "flatten": "flatten_2", "mean": "mean",
                     "mean_pool": "mean_pool"}


def test_a_spatial_mean_is_named_after_its_call(net, batches):
    g = capture(net, batches[0])
    assert [n.name for n in g if n.source == "mean"] == ["mean_positions", "mean_pool", "mean"]


def test_compose_save_load_retrain_and_simulate_with_module_paths(net, batches, tmp_path):
    overrides = {"layer1.0.conv1": {"weight_clusters": 4}, "head.fc": {"input_clusters": 8}}
    cm = rapidnn.compose(net, batches, 16, 16, overrides=overrides)
    assert cm.layer_names() == ["stem.0", "layer1.0.conv1", "head.fc"]
    assert cm.source["stem.0"].params["folded_batchnorm"] == "stem.1"
    assert cm.layer("layer1.0.conv1").weight_centroids.shape == (1, 4)
    assert "layer1.0.relu#2" in cm.codebooks
    assert cm.layer("head.fc").input_codebook.size == 8

    path = tmp_path / "net.rapidnn"
    cm.save(path)
    parts = read_model_file(path)
    assert [n.name for n in parts.source] == [n.name for n in cm.source]
    loaded = rapidnn.load(path)
    x = batches[1]
    assert torch.equal(loaded(x), cm(x))
    assert torch.equal(rapidnn.simulate(loaded, x).outputs, cm(x))
    trace = rapidnn.simulate(loaded, x).trace
    assert trace.layer("layer1.0.conv1").kind == "conv2d"
    est = rapidnn.estimate(loaded)
    assert {"stem.0", "layer1.0.conv1", "head.fc"} <= {lay.name for lay in est.layers}

    y = cm(batches[0]).argmax(1)
    data = DataLoader(TensorDataset(torch.cat(batches), torch.cat([y, cm(x).argmax(1)])),
                      batch_size=8)
    result = rapidnn.retrain(cm, data, data, max_rounds=1, min_rounds=1, progress=False)
    assert result.composed.layer_names() == cm.layer_names()


def test_files_are_written_as_the_current_format_version(net, batches, tmp_path):
    cm = rapidnn.compose(net, batches, 4, 4)
    cm.save(tmp_path / "m.rapidnn")
    import json

    from safetensors import safe_open

    with safe_open(str(tmp_path / "m.rapidnn"), framework="pt") as f:
        assert json.loads(f.metadata()["rapidnn"])["version"] == FORMAT_VERSION == 3


def test_an_override_of_an_old_fx_name_is_refused_naming_the_module_paths(net, batches):
    with pytest.raises(ValueError, match=r"by module path now: \{'layer1_0_conv1': "
                                         r"'layer1\.0\.conv1'\}"):
        rapidnn.compose(net, batches, overrides={"layer1_0_conv1": {"weight_clusters": 4}})


def test_per_layer_simulator_options_must_name_layers(net, batches):
    cm = rapidnn.compose(net, batches, 4, 4)
    x = batches[1]
    faults = rapidnn.accel.FaultConfig(layers={"layer1.0.conv1": {"table": 0.0}})
    assert torch.equal(rapidnn.simulate(cm, x, rapidnn.SimConfig(faults=faults)).outputs, cm(x))
    for config, what in ((rapidnn.SimConfig(approx_bits={"layer1_0_conv1": 4}), "approx_bits"),
                         (rapidnn.SimConfig(faults=rapidnn.accel.FaultConfig(
                             layers={"layer1_0_conv1": {"table": 0.01}})), "faults.layers")):
        with pytest.raises(ValueError, match=rf"{what} names \['layer1_0_conv1'\]"):
            rapidnn.simulate(cm, x, config)
