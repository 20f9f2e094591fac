"""The model store: train once, reuse, atomic writes, corrupt entries, composed models."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import rapidnn.workloads as workloads
import rapidnn.workloads.store as store
from rapidnn.workloads import WORKLOADS, WorkloadError, get_workload


def _no_temp_files(root: Path) -> None:
    assert not [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def _fail(*args, **kwargs):
    raise AssertionError("must not be called: the store should have been used")


def test_train_then_reuse(tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, info = store.get_trained("isolet-mlp", progress=False, root=tmp_path)
    assert get_workload("isolet-mlp") is tiny
    weights, meta = store.entry_paths(tiny, root=tmp_path)
    assert weights.is_file() and meta.is_file() and info["path"] == str(weights)
    assert info["train_seconds"] > 0 and 0 <= info["test_accuracy"] <= 1
    assert info["sizes"] == {"train": 512, "val": 52, "test": 1559}
    assert json.loads(meta.read_text())["key"] == tiny.key() == weights.stem
    _no_temp_files(tmp_path)

    monkeypatch.setattr(store, "fit", _fail)
    again, info2 = store.get_trained("isolet-mlp", progress=False, root=tmp_path)
    assert info2 == info
    for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert not again.training


def test_quick_is_a_separate_entry(tiny, tmp_path: Path) -> None:
    _, info = store.get_trained(tiny, "quick", progress=False, root=tmp_path)
    assert info["quick"] and "-quick-" in info["key"]
    assert not store.entry_paths(tiny, root=tmp_path)[0].exists()


def test_env_override_and_progress_bar(tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(store.ENV_STORE, str(tmp_path / "env-store"))
    assert store.store_root() == tmp_path / "env-store"
    assert store.store_root(tmp_path / "arg") == tmp_path / "arg"
    store.get_trained(tiny, progress=True)
    assert store.entry_paths(tiny)[0].parent == tmp_path / "env-store"
    assert store.entry_paths(tiny)[0].is_file()
    assert "stored" in capsys.readouterr().err


def test_failed_write_leaves_no_partial_entry(tiny, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_save(state, path, metadata=None):
        Path(path).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(store, "save_file", broken_save)
    with pytest.raises(OSError, match="disk full"):
        store.get_trained(tiny, progress=False, root=tmp_path)
    # only the last epoch's checkpoint, so that the next call does not train again
    assert list(tmp_path.iterdir()) == [store.checkpoint_path(tiny, root=tmp_path)]


def test_corrupt_entry_is_retrained(tiny, tmp_path: Path) -> None:
    weights, _ = store.entry_paths(tiny, root=tmp_path)
    tmp_path.mkdir(exist_ok=True)
    weights.write_bytes(b"not a safetensors file")
    assert store.load_trained(tiny, root=tmp_path) is None
    _, info = store.get_trained(tiny, progress=False, root=tmp_path)
    assert info["train_seconds"] is not None
    assert store.load_trained(tiny, root=tmp_path) is not None


def test_weights_without_metadata_are_completed(tiny, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A weights-only entry (an older cache format, no JSON) is reused, not retrained."""
    monkeypatch.setenv("RAPIDNN_CACHE", str(tmp_path / "data"))  # models_root() = data/models
    monkeypatch.delenv(store.ENV_STORE, raising=False)
    model = tiny.build(seed=1)
    weights = store.entry_paths(tiny)[0]
    weights.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    monkeypatch.setattr(store, "fit", _fail)
    loaded, info = store.get_trained(tiny, progress=False)
    assert info["train_seconds"] is None and 0 <= info["test_accuracy"] <= 1
    assert store.entry_paths(tiny)[1].is_file()
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_composed_cache(tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    composed, info = store.get_composed(tiny, 8, 4, progress=False, root=tmp_path,
                                        calibration_batches=2)
    path = Path(info["path"])
    assert path.is_file() and path.with_suffix(".json").is_file()
    assert path.parent == tmp_path / "composed" and path.name.startswith(tiny.key())
    _no_temp_files(tmp_path)
    monkeypatch.setattr(store, "get_trained", _fail)
    again, info2 = store.get_composed(tiny, 8, 4, progress=False, root=tmp_path,
                                      calibration_batches=2)
    x = tiny.splits().test.tensors[0][:50]
    assert torch.equal(composed(x), again(x))
    assert info2["options"] == info["options"]
    assert store.load_composed(tiny, {"weight_clusters": 8, "input_clusters": 4,
                                      "calibration_batches": 2}, root=tmp_path) is not None


def test_composed_keys() -> None:
    wl = WORKLOADS["mnist-mlp"]
    default = store.composed_key(wl, {})
    assert default == store.composed_key(wl, {"weight_clusters": 16, "input_clusters": 16,
                                              "calibration_batches": 20, "seed": 0})
    assert default.startswith(f"{wl.key()}--composed-w16-u16-")
    assert store.composed_key(wl, {"weight_clusters": 8}) != default
    assert store.composed_key(wl, {"tree": True, "weight_clusters": 16}) != default
    assert store.composed_key(wl, {}, "quick") != default
    assert store.composed_key(wl, {}, tag="retrained") != default
    assert "extra" in store.composed_options({"retrain_epochs": 3})
    with pytest.raises(WorkloadError, match="invalid compose options"):
        store.composed_options({"weight_clusters": 0})
    with pytest.raises(WorkloadError, match="not compose options"):
        store.get_composed(wl, progress=False, retrain_epochs=3)


def test_a_second_trainer_waits_and_reuses_the_entry(tiny, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    weights, _ = store.entry_paths(tiny, root=tmp_path)
    model, info = store.train_workload(tiny, progress=False)
    waited = threading.Event()
    result: dict = {}
    with store.entry_lock(weights):  # another "process" is training the model
        monkeypatch.setattr(store, "train_workload", _fail)
        monkeypatch.setattr(store.Console, "print", lambda self, msg, *a, **k: (
            waited.set() if "waiting" in str(msg) else None))

        def second() -> None:
            result["out"] = store.get_trained(tiny, progress=True, root=tmp_path)

        thread = threading.Thread(target=second)
        thread.start()
        assert waited.wait(30) and thread.is_alive()  # blocked on the lock
        store.save_trained(tiny, model, info, root=tmp_path)
    thread.join(30)
    assert not thread.is_alive() and result["out"][1]["key"] == info["key"]
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".lock")] == []


def test_warm_start_continues_the_stored_base(tiny, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    base_model, base_info = store.get_trained(tiny, progress=False, root=tmp_path)
    stage = tiny.recipe.replace(lr=1e-4, warm_start=tiny.recipe)
    wl = dataclasses.replace(tiny, recipe=stage)
    monkeypatch.setattr(workloads, "WORKLOADS", {**WORKLOADS, wl.name: wl})
    assert wl.key() != tiny.key()
    built = []
    monkeypatch.setattr(type(wl), "build",
                        lambda self, seed=None: built.append(seed) or tiny.factory())
    model, info = store.get_trained(wl, progress=False, root=tmp_path)
    assert built == [None]  # only to load the stored base: the stage starts from its weights
    assert info["warm_start"]["key"] == base_info["key"]
    assert info["total_train_seconds"] == pytest.approx(
        info["train_seconds"] + base_info["train_seconds"], abs=0.02)
    moved = [not torch.equal(a, b) for a, b in
             zip(base_model.state_dict().values(), model.state_dict().values(), strict=True)]
    assert any(moved)
    # the stage is its own entry; the base entry is left as it was
    assert store.entry_paths(wl, root=tmp_path)[0].is_file()
    assert json.loads(store.entry_paths(tiny, root=tmp_path)[1].read_text()) == {
        k: v for k, v in base_info.items() if k != "path"}


def test_an_interrupted_training_resumes_from_its_checkpoint(
        tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wl = dataclasses.replace(tiny, recipe=tiny.recipe.replace(epochs=3))
    monkeypatch.setattr(workloads, "WORKLOADS", {**WORKLOADS, wl.name: wl})
    whole, _ = store.get_trained(wl, progress=False, root=tmp_path / "whole")

    real_fit = store.fit

    def killed_in_epoch_3(*args, on_epoch, **kwargs):
        def stop(state):
            on_epoch(state)
            if state.epoch == 2:
                raise KeyboardInterrupt
        return real_fit(*args, on_epoch=stop, **kwargs)

    root = tmp_path / "resumed"
    monkeypatch.setattr(store, "fit", killed_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        store.get_trained(wl, progress=False, root=root)
    ckpt = store.checkpoint_path(wl, root=root)
    assert ckpt.is_file() and not store.entry_paths(wl, root=root)[0].exists()
    _no_temp_files(root)

    monkeypatch.setattr(store, "fit", real_fit)
    resumed, info = store.get_trained(wl, progress=True, root=root)
    assert info["resumed_after_epochs"] == [2] and len(info["loss_history"]) == 3
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert not ckpt.exists()  # removed once the model is stored


def test_a_corrupt_checkpoint_is_ignored(tiny, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = store.checkpoint_path(tiny, root=tmp_path)
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    ckpt.write_bytes(b"garbage")
    _, info = store.get_trained(tiny, progress=True, root=tmp_path)
    assert "unreadable" in capsys.readouterr().err and "resumed_after_epochs" not in info
    assert not ckpt.exists()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("test_accuracy", "high", "field 'test_accuracy' must be a number in [0, 1], got 'high'"),
     ("val_accuracy", 1.5, "field 'val_accuracy' must be a number in [0, 1], got 1.5"),
     ("train_seconds", [1], "field 'train_seconds' must be a non-negative number or null"),
     ("quick", "no", "field 'quick' must be true or false, got 'no'"),
     ("workload", None, "field 'workload' must be a string, got None"),
     ("test_accuracy", ..., "field 'test_accuracy' is missing")],
)
def test_a_mistyped_info_field_names_the_file_and_the_field(tiny, tmp_path: Path, field, value,
                                                            message) -> None:
    store.get_trained(tiny, progress=False, root=tmp_path)
    meta = store.entry_paths(tiny, root=tmp_path)[1]
    info = json.loads(meta.read_text())
    if value is ...:
        del info[field]
    else:
        info[field] = value
    meta.write_text(json.dumps(info))
    with pytest.raises(store.StoreEntryError) as err:
        store.get_trained(tiny, progress=False, root=tmp_path)
    assert isinstance(err.value, ValueError)
    assert str(err.value).startswith(f"store entry {meta}: {message}")
    assert json.loads(meta.read_text()) == info  # never overwritten


def test_a_mistyped_header_info_is_named_too(tiny, tmp_path: Path) -> None:
    store.get_trained(tiny, progress=False, root=tmp_path)
    weights, meta = store.entry_paths(tiny, root=tmp_path)
    model, info = store.load_trained(tiny, root=tmp_path)
    meta.unlink()
    store.save_trained(tiny, model, {**info, "test_accuracy": "x"}, root=tmp_path)
    meta.unlink()
    with pytest.raises(store.StoreEntryError, match=f"{weights} \\(header 'info'\\): field "
                                                    f"'test_accuracy'"):
        store.load_trained(tiny, root=tmp_path)


def test_a_mistyped_composed_info_is_named(tiny, tmp_path: Path) -> None:
    _, info = store.get_composed(tiny, 8, 4, progress=False, root=tmp_path,
                                 calibration_batches=2)
    meta = Path(info["path"]).with_suffix(".json")
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "options": [1]}))
    with pytest.raises(store.StoreEntryError, match="field 'options' must be an object"):
        store.get_composed(tiny, 8, 4, progress=False, root=tmp_path, calibration_batches=2)


def test_compose_option_errors_name_the_field() -> None:
    with pytest.raises(WorkloadError, match="invalid compose options: weight_clusters: expected "
                                            "an integer, not a bool"):
        store.composed_options({"weight_clusters": True})


def test_taking_an_entry_lock_removes_stale_temporary_files(tmp_path) -> None:
    stale = tmp_path / ".m.safetensors.abc123.tmp"
    fresh = tmp_path / ".m.json.def456.tmp"
    for p in (stale, fresh):
        p.write_bytes(b"half")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    with store.entry_lock(tmp_path / "m.safetensors"):
        pass
    assert not stale.exists() and fresh.exists()
