import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rapidnn.composer.capture import CaptureError, UnsupportedOperationError, capture


def test_lenet_capture_folds_batchnorm_and_matches_float(lenet, image_batches):
    g = capture(lenet, image_batches[0])
    ops = [n.op for n in g]
    assert "batchnorm" not in " ".join(ops)
    assert ops == ["input", "conv2d", "relu", "maxpool2d", "conv2d", "relu", "avgpool2d",
                   "reshape", "linear", "relu", "linear", "relu", "linear", "output"]
    x = image_batches[1]
    assert torch.allclose(g.forward(x), lenet(x), atol=1e-5)
    assert g["conv1"].params["folded_batchnorm"] == "bn1"


def test_functional_ops_dropout_and_view_are_captured():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(12, 4)
            self.drop = nn.Dropout(0.5)

        def forward(self, x):
            x = F.max_pool2d(torch.tanh(x), 2)
            x = F.adaptive_avg_pool2d(x, 2)
            x = x.view(x.size(0), -1)
            return torch.sigmoid(self.fc(self.drop(x)))

    net = Net().eval()
    x = torch.randn(2, 3, 8, 8)
    g = capture(net, x)
    assert [n.op for n in g] == ["input", "tanh", "maxpool2d", "avgpool2d", "reshape",
                                 "linear", "sigmoid", "output"]
    assert torch.allclose(g.forward(x), net(x), atol=1e-6)


@pytest.mark.parametrize(
    ("module", "fragment"),
    [
        (nn.Sequential(nn.Conv2d(4, 4, 1), nn.ELU()), "ELU"),
        (nn.Sequential(nn.Conv2d(4, 4, 3, padding_mode="reflect", padding=1)), "padding_mode"),
        (nn.Sequential(nn.Conv2d(4, 4, 1), nn.LayerNorm(8)), "out of scope"),
        (nn.Sequential(nn.Conv2d(4, 4, 1), nn.Softmax(1)), "Softmax"),
        (nn.Sequential(nn.ReflectionPad2d(1)), "ReflectionPad2d"),
    ],
)
def test_unsupported_ops_name_the_node_and_list_what_is_supported(module, fragment):
    with pytest.raises(UnsupportedOperationError) as err:
        capture(module.eval(), torch.randn(2, 4, 8, 8))
    msg = str(err.value)
    assert fragment in msg
    assert "Supported:" in msg and "node" in msg


def test_unsupported_function_is_named():
    class Net(nn.Module):
        def forward(self, x):
            return torch.softmax(x, 1)

    with pytest.raises(UnsupportedOperationError, match="softmax"):
        capture(Net(), torch.randn(2, 3))


def test_untraceable_model_and_bad_inputs_give_capture_errors():
    class Dynamic(nn.Module):
        def forward(self, x):
            if x.sum() > 0:
                return x
            return -x

    with pytest.raises(CaptureError, match="could not trace"):
        capture(Dynamic(), torch.randn(2, 3))
    with pytest.raises(CaptureError):
        capture("not a model", torch.randn(2, 3))  # type: ignore[arg-type]
    with pytest.raises(CaptureError, match="batch"):
        capture(nn.Linear(3, 3), torch.randn(3))
    with pytest.raises(CaptureError, match="example input"):
        capture(nn.Linear(3, 3), torch.randn(2, 5))


@pytest.mark.parametrize(
    ("layer", "x"),
    [(nn.Linear(6, 3), torch.randn(4, 6)),
     (nn.Conv2d(2, 3, 3, padding=1), torch.randn(4, 2, 5, 5))],
)
def test_a_bare_layer_is_captured_like_the_same_layer_in_a_sequential(layer, x):
    layer.train()
    bare, wrapped = capture(layer, x), capture(nn.Sequential(layer), x)
    assert layer.training  # the model's mode is restored
    assert [(n.name, n.op, n.inputs, n.shape, n.source) for n in bare] == \
        [(n.name, n.op, n.inputs, n.shape, n.source) for n in wrapped]
    assert torch.equal(bare["0"].weight, wrapped["0"].weight)
    assert torch.equal(bare.forward(x), layer(x))


def _with(value: float, what: str, index: int = 1) -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        getattr(net[2], what).view(-1)[index] = value
    return net.eval()


@pytest.mark.parametrize(
    ("value", "what", "expected"),
    [(float("nan"), "bias", "layer '2': bias contains NaN"),
     (float("inf"), "weight", "layer '2': weight contains infinite values"),
     (float("-inf"), "bias", "layer '2': bias contains infinite values")],
)
def test_non_finite_parameters_name_the_layer_and_the_tensor(value, what, expected):
    with pytest.raises(CaptureError) as err:
        capture(_with(value, what), torch.randn(2, 4))
    assert str(err.value) == expected


def test_non_finite_parameters_after_batchnorm_folding_are_named():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(4, 3)
            self.bn = nn.BatchNorm1d(3)
            self.fc3 = nn.Linear(3, 2)

        def forward(self, x):
            return self.fc3(torch.relu(self.bn(self.fc1(x))))

    net = Net().eval()
    net.bn.running_var[0] = -2.0  # finite statistics whose fold is not: sqrt(-2 + eps)
    with pytest.raises(CaptureError, match="layer 'fc1': weight contains NaN after folding "
                                           "BatchNorm 'bn'"):
        capture(net, torch.randn(2, 4))


def test_a_model_on_another_device_is_named():
    net = nn.Sequential(nn.Linear(4, 2)).to("meta")
    with pytest.raises(CaptureError, match=r"on device meta \('0.weight'\).*model.cpu\(\)"):
        capture(net, torch.randn(2, 4))


def test_a_forward_that_raises_is_a_capture_error():
    class Raises(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            raise RuntimeError("broken model")

    with pytest.raises(CaptureError, match="could not trace Raises: broken model"):
        capture(Raises(), torch.randn(2, 4))
