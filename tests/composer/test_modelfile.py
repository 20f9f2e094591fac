import json
import struct

import pytest
import torch

import rapidnn
from rapidnn.composer.modelfile import ModelFileError


@pytest.fixture
def composed(lenet, image_batches):
    return rapidnn.compose(lenet, image_batches, 8, 8, per_channel=True, bias_mode="threshold")


def test_round_trip_is_bit_identical(composed, image_batches, tmp_path):
    path = tmp_path / "lenet.rapidnn"
    composed.metadata["dataset"] = "fashion_mnist"
    composed.save(path)
    loaded = rapidnn.load(path)
    x = image_batches[1]
    a, b = composed.integer_forward(x), loaded.integer_forward(x)
    assert torch.equal(a.output, b.output)
    for k in a.accumulators:
        assert torch.equal(a.accumulators[k], b.accumulators[k])
    for k in a.codes:
        assert torch.equal(a.codes[k], b.codes[k])
    assert loaded.config == composed.config
    assert loaded.metadata == {"dataset": "fashion_mnist"}
    assert torch.equal(loaded.float_forward(x), composed.float_forward(x))
    assert not list(tmp_path.glob("*.tmp"))
    assert path.stat().st_mode & 0o777 == 0o644  # shareable, like any file written directly


def test_round_trip_of_tree_codebooks(lenet, image_batches, tmp_path):
    cm = rapidnn.compose(lenet, image_batches, 8, 4, tree=True)
    cm.save(tmp_path / "t.rapidnn")
    loaded = rapidnn.load(tmp_path / "t.rapidnn")
    assert torch.equal(cm.layer("fc1").layer.weight_levels_2, loaded.layer("fc1").layer
                       .weight_levels_2)


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="no such model file"):
        rapidnn.load(tmp_path / "missing.rapidnn")


def test_truncated_file(composed, tmp_path):
    path = tmp_path / "m.rapidnn"
    composed.save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated or corrupt"):
        rapidnn.load(path)


def test_garbage_file(tmp_path):
    path = tmp_path / "g.rapidnn"
    path.write_bytes(b"this is not a model")
    with pytest.raises(ModelFileError):
        rapidnn.load(path)


def _rewrite_manifest(path, edit):
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    manifest = json.loads(header["__metadata__"]["rapidnn"])
    edit(manifest)
    header["__metadata__"]["rapidnn"] = json.dumps(manifest)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n:])


def test_wrong_version(composed, tmp_path):
    path = tmp_path / "v.rapidnn"
    composed.save(path)
    _rewrite_manifest(path, lambda m: m.update(version=99))
    with pytest.raises(ModelFileError, match="version 99"):
        rapidnn.load(path)


def test_inconsistent_manifest(composed, tmp_path):
    path = tmp_path / "i.rapidnn"
    composed.save(path)
    _rewrite_manifest(path, lambda m: m["ops"][1].update(kind="teleporter"))
    with pytest.raises(ModelFileError, match="teleporter"):
        rapidnn.load(path)


def test_safetensors_without_manifest(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "plain.rapidnn"
    save_file({"a": torch.zeros(2)}, str(path))
    with pytest.raises(ModelFileError, match="manifest"):
        rapidnn.load(path)
