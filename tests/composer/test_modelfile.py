import json
import struct
import sys
from pathlib import Path

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


# complete validation (format version 2, issue 19) ------------------------------------------
sys.path.insert(0, str(Path(__file__).parent))
from fuzzing import sign_file, split_file  # noqa: E402


def _edit(path, edit_manifest=None, edit_tensors=None):
    """Rewrite ``path`` with an edited manifest/tensors and correct checksums."""
    manifest, tensors = split_file(path.read_bytes())
    if edit_manifest is not None:
        edit_manifest(manifest)
    if edit_tensors is not None:
        edit_tensors(tensors)
    path.write_bytes(sign_file(manifest, tensors))


@pytest.fixture
def saved(composed, tmp_path):
    path = tmp_path / "m.rapidnn"
    composed.save(path)
    return path


def _op(manifest, kind):
    return next(i for i, o in enumerate(manifest["ops"]) if o["kind"] == kind)


def test_a_flipped_byte_in_the_tensor_data_is_detected(saved):
    data = bytearray(saved.read_bytes())
    data[-3] ^= 0x10  # the last tensor's bytes (weight codes or a table)
    saved.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="tensor data does not match its SHA-256"):
        rapidnn.load(saved)


def test_a_changed_manifest_is_detected(saved):
    data = saved.read_bytes()
    edited = data.replace(b'\\"rapidnn_version\\": \\"0', b'\\"rapidnn_version\\": \\"9')
    assert edited != data and len(edited) == len(data)
    saved.write_bytes(edited)
    with pytest.raises(ModelFileError, match="manifest does not match its SHA-256"):
        rapidnn.load(saved)


def test_a_huge_acc_bits_is_rejected_at_once_not_a_hang(saved):
    # 2 ** (acc_bits - 1) with acc_bits = 2**31 ran forever before the spec was validated
    _edit(saved, lambda m: m["ops"][_op(m, "weighted")]["spec"].update(acc_bits=2**31))
    with pytest.raises(ModelFileError, match=r"ops\[\d+\] \(\w+\)\.spec\.acc_bits: is 2147483648"):
        rapidnn.load(saved)
    _edit(saved, lambda m: m["config"].update(acc_bits=2**31))
    with pytest.raises(ModelFileError, match=r"config\.acc_bits: Input should be less than or"):
        rapidnn.load(saved)


def test_a_table_that_disagrees_with_its_centroids_is_rejected(saved):
    # the redundant copies are rebuilt from the centroids and must match bit for bit
    def bump(tensors):
        name = next(k for k in sorted(tensors) if k.endswith(".table"))
        tensors[name] = tensors[name].clone()
        tensors[name].view(-1)[0] += 1
    _edit(saved, edit_tensors=bump)
    with pytest.raises(ModelFileError, match=r"ops\[\d+\] \(\w+\)\.table: .* does not match"):
        rapidnn.load(saved)


@pytest.mark.parametrize(("tensor", "value", "message"), [
    ("weight_codes", 200, "code 200 is out of range for 8 weight centroids"),
    ("weight_centroids", float("nan"), "weight_centroids: contains NaN"),
])
def test_primary_tensors_are_checked(saved, tensor, value, message):
    def edit(tensors):
        name = next(k for k in sorted(tensors) if k.endswith(f".{tensor}"))
        tensors[name] = tensors[name].clone()
        tensors[name].view(-1)[0] = value
    _edit(saved, edit_tensors=edit)
    with pytest.raises(ModelFileError, match=message):
        rapidnn.load(saved)


def test_a_nan_source_bias_is_rejected(saved):
    def edit(tensors):
        name = next(k for k in sorted(tensors) if k.startswith("source.") and
                    k.endswith(".bias"))
        tensors[name] = torch.full_like(tensors[name], float("nan"))
    _edit(saved, edit_tensors=edit)
    with pytest.raises(ModelFileError, match=r"graph\[\d+\] \(\w+\)\.bias: contains NaN"):
        rapidnn.load(saved)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda m: m["graph"][1].update(params=[1, 2]), r"graph\[1\]\.params: Input should be a"),
    (lambda m: m["graph"][1].update(shape=[0]), r"graph\[1\]\.shape\[0\]: Input should be"),
    (lambda m: m["graph"][2].update(inputs=["nowhere"]), "'nowhere' is not an earlier node"),
    (lambda m: m["graph"][1].update(name="../../x"), r"graph\[1\]\.name: String should match"),
    (lambda m: m["ops"][0]["spec"].update(name=["a"]), r"ops\[0\]\.spec\.name: Input should be"),
    (lambda m: m["config"].update(weight_clusters=True), "config.weight_clusters"),
    (lambda m: m.update(metadata=[]), "metadata: Input should be a valid dictionary"),
    (lambda m: m["codebooks"].pop(), "codebooks"),
    (lambda m: m["ops"].pop(), "the op list"),
    (lambda m: m["ops"].pop(1), "no weighted op for layer 'conv1'"),
])
def test_manifest_fields_are_named(saved, edit, message):
    _edit(saved, edit)
    with pytest.raises(ModelFileError, match=message):
        rapidnn.load(saved)


def test_a_manifest_that_is_not_an_object_or_nested_too_deeply(saved):
    _, tensors = split_file(saved.read_bytes())
    for text in ("[1, 2]", "[" * 100_000 + "]" * 100_000):
        from safetensors.torch import save

        saved.write_bytes(save(tensors, metadata={"rapidnn": text}))
        with pytest.raises(ModelFileError):
            rapidnn.load(saved)


def test_a_path_too_long_is_a_clear_error(tmp_path):
    with pytest.raises(ModelFileError):
        rapidnn.load(tmp_path / ("x" * 5000))


def test_version_1_files_still_load(composed, saved, image_batches):
    # version 1: no checksums; validated the same way otherwise
    manifest, tensors = split_file(saved.read_bytes())
    manifest["version"] = 1
    del manifest["tensors_sha256"]
    from safetensors.torch import save

    saved.write_bytes(save(tensors, metadata={"rapidnn": json.dumps(manifest)}))
    loaded = rapidnn.load(saved)
    assert torch.equal(loaded(image_batches[0]), composed(image_batches[0]))
    manifest["ops"][_op(manifest, "weighted")]["spec"]["acc_bits"] = 2**31
    saved.write_bytes(save(tensors, metadata={"rapidnn": json.dumps(manifest)}))
    with pytest.raises(ModelFileError, match="acc_bits"):
        rapidnn.load(saved)
