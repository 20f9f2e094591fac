"""Tests for rapidnn.data: real-dataset loads, the cache and every error path.

Real-data tests read the shared datasets folder (``$RAPIDNN_DATA`` or ``<repo>/../shared/
datasets``); all other tests build small synthetic dataset folders in ``tmp_path``. The cache is
always redirected to a temporary folder. The full CIFAR-10 train split (50,000 JPEGs, ~10 s)
runs only with ``RAPIDNN_SLOW_TESTS=1``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from rapidnn import data
from rapidnn.data import DATASETS, Dataset, DatasetError, _cache

FIXTURE_ORIGIN = "synthetic fixture built by tests/test_data.py"
README = f"# synthetic\n\n- **Where it came from**: {FIXTURE_ORIGIN}\n  (second line)\n"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never touch the user's real cache."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("RAPIDNN_CACHE", str(cache))
    return cache


@pytest.fixture(scope="module")
def real_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache shared by the real-data tests of this module (decode each split once)."""
    return tmp_path_factory.mktemp("real_cache")


@pytest.fixture
def real(real_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RAPIDNN_CACHE", str(real_cache))
    return data.datasets_root()


# --------------------------------------------------------------------------- synthetic folders


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_sums(folder: Path) -> None:
    names = sorted(p.name for p in folder.iterdir() if p.name not in ("README.md", "SHA256SUMS"))
    lines = [f"{_sha(folder / n)}  {n}\n" for n in names]
    (folder / "SHA256SUMS").write_text("".join(lines))


def idx_bytes(arr: np.ndarray, magic: int) -> bytes:
    return struct.pack(">I", magic) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def make_mnist(root: Path, n: int = 6, seed: int = 0) -> Path:
    folder = root / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for prefix in ("train", "t10k"):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(idx_bytes(x, 0x803), mtime=0)
        )
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(
            gzip.compress(idx_bytes(y, 0x801), mtime=0)
        )
    (folder / "README.md").write_text(README)
    write_sums(folder)
    return folder


def make_isolet(root: Path) -> Path:
    folder = root / "isolet"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (52, 617))
    scipy.io.savemat(
        folder / "isolet1_Isolet.mat",
        {"X": x, "Y": (np.arange(52) % 26 + 1).astype(np.uint8).reshape(-1, 1)},
    )
    rec = np.zeros(26, dtype=[("x", "<f4", (617,)), ("y", "<i4")])
    rec["x"] = rng.uniform(-1, 1, (26, 617))
    rec["y"] = np.arange(26)[::-1]
    (folder / "isolet5_test.choir_dat").write_bytes(struct.pack("<ii", 617, 26) + rec.tobytes())
    (folder / "README.md").write_text(
        "# isolet\n\n| file | samples | from |\n|---|---|---|\n"
        "| `isolet5_test.choir_dat` | 26 | synthetic choir fixture |\n"
        "| `isolet1_Isolet.mat` | 52 | synthetic mat fixture |\n"
    )
    write_sums(folder)
    return folder


def make_har(root: Path) -> Path:
    """Sessions: 0 (user 1): label 1 x300, -1 x50, 7 x200, 2 x127; 1 (user 2): label 6 x256;
    2 (user 2): label 6 x128 (same label, new session: not merged with session 1)."""
    folder = root / "hapt_raw"
    folder.mkdir(parents=True, exist_ok=True)
    parts = [(0, 1, 1, 300), (0, 1, -1, 50), (0, 1, 7, 200), (0, 1, 2, 127),
             (1, 2, 6, 256), (2, 2, 6, 128)]
    exp = np.concatenate([np.full(n, e) for e, _, _, n in parts]).astype(np.int8)
    user = np.concatenate([np.full(n, u) for _, u, _, n in parts]).astype(np.int8)
    label = np.concatenate([np.full(n, c) for _, _, c, n in parts]).astype(np.int8)
    sample = np.zeros(len(exp), dtype=np.int32)
    for e in np.unique(exp):
        sample[exp == e] = np.arange(int((exp == e).sum()))  # index within the session
    signals = np.arange(len(exp) * 6, dtype=np.float32).reshape(-1, 6)
    np.savez(
        folder / "hapt_raw_50hz.npz", signals=signals, label=label, user=user, experiment=exp,
        sample=sample, channels=np.array(["acc-x", "acc-y", "acc-z", "gyro-x", "gyro-y", "gyro-z"]),
    )
    (folder / "README.md").write_text(README)
    write_sums(folder)
    return folder


def solid_jpeg(rgb: tuple[int, int, int], size: tuple[int, int] = (32, 32)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, rgb).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def colour(c: int, i: int) -> tuple[int, int, int]:
    return (20 * c + 10, 100 + 50 * i, 200 - 15 * c)


def make_cifar(root: Path, split: str = "test", members: list[tuple[str, bytes]] | None = None,
               ) -> Path:
    folder = root / "cifar10_jpg"
    folder.mkdir(parents=True, exist_ok=True)
    if members is None:
        classes = DATASETS["cifar10"].classes
        members = [
            (f"{split}/{cls}/{i:04d}.jpg", solid_jpeg(colour(c, i)))
            for c, cls in enumerate(classes)
            for i in range(2)
        ]
        members.reverse()  # the loader must sort, not trust the archive order
    with tarfile.open(folder / f"cifar10_jpg_{split}.tar.gz", "w:gz") as tar:
        for name, payload in members:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    (folder / "README.md").write_text(README)
    write_sums(folder)
    return folder


def assert_names_file(err: DatasetError, path: Path, origin: str = FIXTURE_ORIGIN) -> str:
    msg = str(err)
    assert str(path) in msg
    assert origin in msg
    assert "to fix:" in msg
    # wrapped low-level errors are not chained into the printed traceback
    assert err.__cause__ is None
    return msg


# --------------------------------------------------------------------------- registry, roots


def test_registry_names_and_classes() -> None:
    assert set(DATASETS) == {"mnist", "fashion_mnist", "isolet", "har", "cifar10"}
    sizes = {n: len(s.classes) for n, s in DATASETS.items()}
    assert sizes == {"mnist": 10, "fashion_mnist": 10, "isolet": 26, "har": 6, "cifar10": 10}
    assert list(DATASETS["cifar10"].classes) == sorted(DATASETS["cifar10"].classes)
    assert all(set(s.splits) == {"train", "test"} for s in DATASETS.values())


def test_unknown_name_and_split() -> None:
    with pytest.raises(DatasetError, match="valid names: cifar10, fashion_mnist, har"):
        data.load("imagenet")
    with pytest.raises(DatasetError, match=r"unknown split 'val'.*valid splits: train, test"):
        data.load("mnist", "val")


def test_datasets_root_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_mnist(tmp_path, n=3)
    monkeypatch.setenv("RAPIDNN_DATA", str(tmp_path))
    assert data.datasets_root() == tmp_path
    ds = data.load("mnist", "test")
    assert ds.x.shape == (3, 28, 28)


def test_datasets_root_default_walks_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAPIDNN_DATA", raising=False)
    # from this package's location (works in a checkout with shared/ beside the repo)
    here = data._find_shared_datasets(Path(data.__file__).parent)
    if here is not None:
        assert data.datasets_root() == here
    # from the current directory when the package lives elsewhere (e.g. site-packages)
    (tmp_path / "shared" / "datasets").mkdir(parents=True)
    (tmp_path / "repo" / "sub").mkdir(parents=True)
    monkeypatch.setattr(data, "__file__", str(tmp_path / "site" / "rapidnn" / "x.py"))
    monkeypatch.chdir(tmp_path / "repo" / "sub")
    assert data.datasets_root() == (tmp_path / "shared" / "datasets").resolve()


def test_datasets_root_not_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAPIDNN_DATA", raising=False)
    monkeypatch.setattr(data, "_find_shared_datasets", lambda start: None)
    with pytest.raises(DatasetError, match="RAPIDNN_DATA"):
        data.datasets_root()


def test_cache_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert data.cache_root() == tmp_path / "cache"
    monkeypatch.delenv("RAPIDNN_CACHE")
    default = data.cache_root()
    assert default.name == "data" and "rapidnn" in str(default)


# --------------------------------------------------------------------------- real datasets

MNIST_COUNTS = {
    "train": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    "test": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
}


@pytest.mark.parametrize("split", ["train", "test"])
def test_real_mnist(real: Path, split: str) -> None:
    ds = data.load("mnist", split)
    n = 60000 if split == "train" else 10000
    assert ds.x.shape == (n, 28, 28) and ds.x.dtype == np.uint8
    assert ds.y.dtype == np.int64
    assert np.bincount(ds.y).tolist() == MNIST_COUNTS[split]
    assert ds.x.max() == 255 and ds.x.min() == 0
    x, y = data.as_tensors(ds)
    assert x.shape == (n, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert float(x.max()) == 1.0


@pytest.mark.parametrize("split", ["train", "test"])
def test_real_fashion_mnist(real: Path, split: str) -> None:
    ds = data.load("fashion_mnist", split)
    per_class = 6000 if split == "train" else 1000
    assert ds.x.shape == (10 * per_class, 28, 28) and ds.x.dtype == np.uint8
    assert np.bincount(ds.y).tolist() == [per_class] * 10
    assert ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot"


def test_real_isolet(real: Path) -> None:
    train, test = data.load("isolet", "train"), data.load("isolet", "test")
    assert train.x.shape == (1560, 617) and train.x.dtype == np.float32
    assert test.x.shape == (1559, 617) and test.x.dtype == np.float32
    assert np.bincount(train.y).tolist() == [60] * 26
    expected = [60] * 26
    expected[12] = 59  # 'M'
    assert np.bincount(test.y).tolist() == expected
    for ds in (train, test):
        assert ds.x.min() >= -1.0 and ds.x.max() <= 1.0
    np.testing.assert_allclose(train.x[0, :3], [-0.4394, -0.0930, 0.1718], atol=1e-4)
    x, _ = data.as_tensors(train)
    assert x.shape == (1560, 617) and torch.equal(x, torch.from_numpy(train.x))


def _har_reference_counts(npz_path: Path) -> dict[str, list[int]]:
    """Independent (loop) implementation of the README's windowing, per split and class."""
    with np.load(npz_path, allow_pickle=False) as z:
        label, exp, user = z["label"], z["experiment"], z["user"]
    counts = {"train": [0] * 6, "test": [0] * 6}
    start = 0
    for i in range(1, len(label) + 1):
        if i == len(label) or label[i] != label[start] or exp[i] != exp[start]:
            c, length = int(label[start]), i - start
            if 1 <= c <= 6 and length >= 128:
                split = "test" if int(user[start]) in data.HAR_TEST_SUBJECTS else "train"
                counts[split][c - 1] += (length - 128) // 64 + 1
            start = i
    return counts


def test_real_har(real: Path) -> None:
    train, test = data.load("har", "train"), data.load("har", "test")
    for ds in (train, test):
        assert ds.x.ndim == 3 and ds.x.shape[1:] == (128, 6) and ds.x.dtype == np.float32
    total = np.bincount(train.y, minlength=6) + np.bincount(test.y, minlength=6)
    assert total.tolist() == [1722, 1544, 1407, 1801, 1979, 1958]  # README
    assert len(train) + len(test) == 10411
    ref = _har_reference_counts(real / "hapt_raw" / "hapt_raw_50hz.npz")
    assert np.bincount(train.y, minlength=6).tolist() == ref["train"]
    assert np.bincount(test.y, minlength=6).tolist() == ref["test"]
    assert (len(train), len(test)) == (7415, 2996)
    x, _ = data.as_tensors(test)
    assert x.shape == (len(test), 6, 128)
    assert torch.equal(x[5, :, 17], torch.from_numpy(test.x[5, 17]))


def test_real_cifar10_test_split(real: Path) -> None:
    ds = data.load("cifar10", "test")
    assert ds.x.shape == (10000, 32, 32, 3) and ds.x.dtype == np.uint8
    assert np.bincount(ds.y).tolist() == [1000] * 10
    assert np.all(np.diff(ds.y) >= 0)  # sorted by class
    tar_path = real / "cifar10_jpg" / "cifar10_jpg_test.tar.gz"
    with tarfile.open(tar_path, "r:gz") as tar:
        first = tar.extractfile("test/airplane/0000.jpg")
        assert first is not None
        expected = np.asarray(Image.open(io.BytesIO(first.read())).convert("RGB"))
    np.testing.assert_array_equal(ds.x[0], expected)
    x, _ = data.as_tensors(ds)
    assert x.shape == (10000, 3, 32, 32) and float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    np.testing.assert_allclose(x[0].numpy(), expected.transpose(2, 0, 1) / 255.0, atol=1e-6)


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("RAPIDNN_SLOW_TESTS") != "1", reason="set RAPIDNN_SLOW_TESTS=1 (~10 s decode)"
)
def test_real_cifar10_train_split(real: Path) -> None:
    ds = data.load("cifar10", "train")
    assert ds.x.shape == (50000, 32, 32, 3) and ds.x.dtype == np.uint8
    assert np.bincount(ds.y).tolist() == [5000] * 10
    mean = ds.x.reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(mean, [125.27, 122.93, 113.86], atol=0.01)  # README


# --------------------------------------------------------------------------- synthetic loads


def test_synthetic_isolet(tmp_path: Path) -> None:
    make_isolet(tmp_path)
    train = data.load("isolet", "train", root=tmp_path)
    test = data.load("isolet", "test", root=tmp_path)
    assert train.x.shape == (52, 617) and train.x.dtype == np.float32
    assert train.y.tolist() == (np.arange(52) % 26).tolist()  # 1..26 mapped to 0..25
    assert test.y.tolist() == list(range(25, -1, -1))
    assert train.classes[0] == "A" and train.classes[25] == "Z"


def test_har_window_starts_gaps() -> None:
    label = np.array([1] * 200 + [2] * 130)
    session = np.zeros(330, dtype=int)
    assert data.har_window_starts(label, session).tolist() == [0, 64, 200]
    sample = np.arange(330)
    sample[100:] += 5  # a gap inside the label-1 run splits it into 100 + 100 samples
    assert data.har_window_starts(label, session, sample).tolist() == [200]


def test_synthetic_har(tmp_path: Path) -> None:
    make_har(tmp_path)
    train = data.load("har", "train", root=tmp_path)
    test = data.load("har", "test", root=tmp_path)
    assert train.y.tolist() == [0, 0, 0]  # label 1 x300 -> 3 windows; 7 and a short 2 -> none
    assert test.y.tolist() == [5, 5, 5, 5]  # 256 -> 3 windows, next session 128 -> 1
    signals = np.arange((300 + 50 + 200 + 127 + 256 + 128) * 6, dtype=np.float32).reshape(-1, 6)
    starts = [0, 64, 128]
    np.testing.assert_array_equal(train.x, np.stack([signals[s : s + 128] for s in starts]))
    first_test = 300 + 50 + 200 + 127
    np.testing.assert_array_equal(test.x[3], signals[first_test + 256 : first_test + 384])
    x, y = data.as_tensors(test)
    assert x.shape == (4, 6, 128) and y.tolist() == [5, 5, 5, 5]


def test_synthetic_cifar_order_and_values(tmp_path: Path) -> None:
    make_cifar(tmp_path, "test")
    ds = data.load("cifar10", "test", root=tmp_path)
    assert ds.x.shape == (20, 32, 32, 3) and ds.x.dtype == np.uint8
    assert ds.y.tolist() == [c for c in range(10) for _ in range(2)]
    for k in range(20):
        c, i = divmod(k, 2)
        assert np.abs(ds.x[k].astype(int) - colour(c, i)).max() <= 3
    x, _ = data.as_tensors(ds, normalize=False)
    assert x.shape == (20, 3, 32, 32) and float(x.max()) > 1.0


# --------------------------------------------------------------------------- cache


def _boom(*args: object, **kwargs: object) -> None:
    raise AssertionError("should not be called on a cache hit")


def test_cache_hit_skips_hash_and_decode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _isolated_cache: Path
) -> None:
    make_mnist(tmp_path / "d")
    first = data.load("mnist", "train", root=tmp_path / "d")
    entries = sorted(p.name for p in _isolated_cache.iterdir())
    assert len(entries) == 2 and entries[0].endswith(".json") and entries[1].endswith(".npz")
    assert entries[1].startswith("mnist-train-v1-")
    monkeypatch.setattr(data, "_decode", _boom)
    monkeypatch.setattr(_cache, "sha256_file", _boom)
    second = data.load("mnist", "train", root=tmp_path / "d")
    np.testing.assert_array_equal(first.x, second.x)
    np.testing.assert_array_equal(first.y, second.y)
    assert second.y.dtype == np.int64
    with np.load(_isolated_cache / entries[1], allow_pickle=False) as z:
        assert set(z.files) == {"x", "y"}


def test_cache_key_follows_source_sha(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _isolated_cache: Path
) -> None:
    root = tmp_path / "d"
    make_mnist(root, seed=0)
    a = data.load("mnist", "test", root=root)
    make_mnist(root, seed=1)  # new content and new SHA256SUMS
    b = data.load("mnist", "test", root=root)
    assert not np.array_equal(a.x, b.x)
    assert len(list(_isolated_cache.glob("mnist-test-*.npz"))) == 2


def test_changed_source_is_detected_despite_cache(tmp_path: Path) -> None:
    folder = make_mnist(tmp_path)
    data.load("mnist", "train", root=tmp_path)
    path = folder / "train-labels-idx1-ubyte.gz"
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF  # same size, new mtime, SHA256SUMS not updated
    path.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match="checksum mismatch") as exc:
        data.load("mnist", "train", root=tmp_path)
    assert_names_file(exc.value, path)


def test_touched_source_is_rehashed_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = make_mnist(tmp_path)
    data.load("mnist", "train", root=tmp_path)
    path = folder / "train-images-idx3-ubyte.gz"
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    hashed: list[str] = []
    real_sha = _cache.sha256_file
    monkeypatch.setattr(_cache, "sha256_file", lambda p: hashed.append(p.name) or real_sha(p))
    monkeypatch.setattr(data, "_decode", _boom)
    data.load("mnist", "train", root=tmp_path)
    assert hashed == [path.name]
    data.load("mnist", "train", root=tmp_path)  # fingerprint refreshed: no hashing now
    assert hashed == [path.name]


def test_corrupt_cache_entry_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _isolated_cache: Path
) -> None:
    make_mnist(tmp_path)
    good = data.load("mnist", "test", root=tmp_path)
    (entry,) = _isolated_cache.glob("*.npz")
    entry.write_bytes(b"not a zip")
    calls: list[str] = []
    real_decode = data._decode
    monkeypatch.setattr(data, "_decode", lambda *a: calls.append("x") or real_decode(*a))
    again = data.load("mnist", "test", root=tmp_path)
    assert calls == ["x"]
    np.testing.assert_array_equal(good.x, again.x)
    assert not list(_isolated_cache.glob("*.tmp"))
    data.load("mnist", "test", root=tmp_path)
    assert calls == ["x"]


def test_cache_disabled_and_unwritable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _isolated_cache: Path
) -> None:
    make_mnist(tmp_path)
    data.load("mnist", "test", root=tmp_path, cache=False)
    assert not _isolated_cache.exists()
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("RAPIDNN_CACHE", str(blocker))
    with pytest.warns(UserWarning, match="could not write cache"):
        ds = data.load("mnist", "test", root=tmp_path)
    assert len(ds) == 6


# --------------------------------------------------------------------------- error paths


def test_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = make_mnist(tmp_path)
    path = folder / "t10k-images-idx3-ubyte.gz"
    path.unlink()
    monkeypatch.setenv("RAPIDNN_DATA", str(tmp_path))
    with pytest.raises(DatasetError, match="file not found") as exc:
        data.load("mnist", "test")
    msg = assert_names_file(exc.value, path)
    assert f"RAPIDNN_DATA={tmp_path}" in msg and "'mnist'" in msg


def test_missing_dataset_folder_uses_builtin_source(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="file not found") as exc:
        data.load("cifar10", "test", root=tmp_path)
    path = tmp_path / "cifar10_jpg" / "cifar10_jpg_test.tar.gz"
    assert_names_file(exc.value, path, origin=DATASETS["cifar10"].source)


def test_missing_sha256sums(tmp_path: Path) -> None:
    folder = make_mnist(tmp_path)
    (folder / "SHA256SUMS").unlink()
    with pytest.raises(DatasetError, match="checksum list") as exc:
        data.load("mnist", root=tmp_path)
    assert_names_file(exc.value, folder / "SHA256SUMS")


def test_file_not_listed(tmp_path: Path) -> None:
    folder = make_mnist(tmp_path)
    sums = folder / "SHA256SUMS"
    sums.write_text("".join(ln for ln in sums.read_text().splitlines(True) if "t10k-l" not in ln))
    with pytest.raises(DatasetError, match="not listed") as exc:
        data.load("mnist", "test", root=tmp_path)
    assert_names_file(exc.value, folder / "t10k-labels-idx1-ubyte.gz")


def test_checksum_mismatch(tmp_path: Path) -> None:
    folder = make_mnist(tmp_path)
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes() + b"junk")
    with pytest.raises(DatasetError, match="checksum mismatch") as exc:
        data.load("mnist", "train", root=tmp_path)
    assert_names_file(exc.value, path)


def _replace(folder: Path, name: str, payload: bytes) -> Path:
    path = folder / name
    path.write_bytes(payload)
    write_sums(folder)
    return path


def test_bad_idx_magic(tmp_path: Path) -> None:
    folder = make_mnist(tmp_path)
    x = np.zeros((6, 28, 28), np.uint8)
    path = _replace(folder, "train-images-idx3-ubyte.gz", gzip.compress(idx_bytes(x, 0x801)))
    with pytest.raises(DatasetError, match="bad IDX magic 0x00000801") as exc:
        data.load("mnist", "train", root=tmp_path)
    assert_names_file(exc.value, path)


def test_truncated_gzip(tmp_path: Path) -> None:
    folder = make_mnist(tmp_path)
    raw = (folder / "train-images-idx3-ubyte.gz").read_bytes()
    path = _replace(folder, "train-images-idx3-ubyte.gz", raw[: len(raw) // 2])
    with pytest.raises(DatasetError, match="cannot decode gzip IDX file") as exc:
        data.load("mnist", "train", root=tmp_path)
    assert_names_file(exc.value, path)
    assert exc.value.__suppress_context__


def test_not_gzip(tmp_path: Path) -> None:
    folder = make_mnist(tmp_path)
    path = _replace(folder, "t10k-labels-idx1-ubyte.gz", b"plain text, not gzip")
    with pytest.raises(DatasetError, match="BadGzipFile") as exc:
        data.load("mnist", "test", root=tmp_path)
    assert_names_file(exc.value, path)


@pytest.mark.parametrize("cut", [2, 10, 100])
def test_truncated_idx_payload(tmp_path: Path, cut: int) -> None:
    folder = make_mnist(tmp_path)
    x = np.zeros((6, 28, 28), np.uint8)
    payload = gzip.compress(idx_bytes(x, 0x803)[:cut])
    path = _replace(folder, "t10k-images-idx3-ubyte.gz", payload)
    with pytest.raises(DatasetError, match="truncated") as exc:
        data.load("mnist", "test", root=tmp_path)
    assert_names_file(exc.value, path)


def test_label_count_mismatch(tmp_path: Path) -> None:
    folder = make_mnist(tmp_path)
    y = np.zeros(5, np.uint8)
    path = _replace(folder, "t10k-labels-idx1-ubyte.gz", gzip.compress(idx_bytes(y, 0x801)))
    with pytest.raises(DatasetError, match="5 labels for 6 images") as exc:
        data.load("mnist", "test", root=tmp_path)
    assert_names_file(exc.value, path)


def test_isolet_errors(tmp_path: Path) -> None:
    folder = make_isolet(tmp_path)
    raw = (folder / "isolet5_test.choir_dat").read_bytes()
    path = _replace(folder, "isolet5_test.choir_dat", raw[:-7])
    with pytest.raises(DatasetError, match="truncated file") as exc:
        data.load("isolet", "test", root=tmp_path)
    assert_names_file(exc.value, path, origin="synthetic choir fixture")

    _replace(folder, "isolet5_test.choir_dat", struct.pack("<ii", 600, 26) + raw[8:])
    with pytest.raises(DatasetError, match="bad header F=600"):
        data.load("isolet", "test", root=tmp_path)

    path = _replace(folder, "isolet1_Isolet.mat", b"MATLAB 5.0 MAT-file" + b"\0" * 50)
    with pytest.raises(DatasetError, match="cannot decode MAT-file") as exc:
        data.load("isolet", "train", root=tmp_path)
    assert_names_file(exc.value, path, origin="synthetic mat fixture")


def test_har_errors(tmp_path: Path) -> None:
    folder = make_har(tmp_path)
    path = folder / "hapt_raw_50hz.npz"
    raw = path.read_bytes()
    _replace(folder, path.name, raw[: len(raw) // 3])
    with pytest.raises(DatasetError, match="cannot decode npz archive") as exc:
        data.load("har", "train", root=tmp_path)
    assert_names_file(exc.value, path)

    np.savez(path, signals=np.zeros((10, 6), np.float32), label=np.zeros(10, np.int8))
    write_sums(folder)
    with pytest.raises(DatasetError, match="KeyError"):
        data.load("har", "train", root=tmp_path)

    obj = np.array([None] * 10, dtype=object)  # would need pickle: must be refused
    arrays = {k: obj for k in ("signals", "label", "user", "experiment", "sample")}
    np.savez(path, allow_pickle=True, **arrays)  # type: ignore[arg-type]
    write_sums(folder)
    with pytest.raises(DatasetError, match="allow_pickle") as exc:
        data.load("har", "test", root=tmp_path)
    assert_names_file(exc.value, path)


def test_cifar_errors(tmp_path: Path) -> None:
    folder = make_cifar(tmp_path, "test")
    path = folder / "cifar10_jpg_test.tar.gz"
    raw = path.read_bytes()
    _replace(folder, path.name, raw[: len(raw) // 2])
    with pytest.raises(DatasetError, match=r"cannot decode tar\.gz of JPEGs") as exc:
        data.load("cifar10", "test", root=tmp_path)
    assert_names_file(exc.value, path)

    make_cifar(tmp_path, "test", members=[("train/cat/0000.jpg", solid_jpeg((1, 2, 3)))])
    with pytest.raises(DatasetError, match=r"unexpected member 'train/cat/0000\.jpg'"):
        data.load("cifar10", "test", root=tmp_path)

    make_cifar(tmp_path, "test", members=[("test/cat/0000.jpg", solid_jpeg((1, 2, 3)))])
    with pytest.raises(DatasetError, match=r"no images for classes \['airplane'"):
        data.load("cifar10", "test", root=tmp_path)

    make_cifar(tmp_path, "test", members=[("test/cat/0000.jpg", solid_jpeg((1, 2, 3), (8, 8)))])
    with pytest.raises(DatasetError, match=r"test/cat/0000.jpg is \(8, 8\)"):
        data.load("cifar10", "test", root=tmp_path)

    make_cifar(tmp_path, "test", members=[("test/cat/0000.jpg", b"not a jpeg")])
    with pytest.raises(DatasetError, match="UnidentifiedImageError") as exc:
        data.load("cifar10", "test", root=tmp_path)
    assert_names_file(exc.value, path)


# --------------------------------------------------------------------------- tensors, loader


def test_as_tensors_layouts() -> None:
    gray = Dataset("mnist", "test", np.full((2, 28, 28), 255, np.uint8), np.array([1, 2]), ())
    x, y = data.as_tensors(gray)
    assert x.shape == (2, 1, 28, 28) and x.dtype == torch.float32 and float(x.max()) == 1.0
    assert y.dtype == torch.int64 and y.tolist() == [1, 2]
    assert float(data.as_tensors(gray, normalize=False)[0].max()) == 255.0

    img = np.zeros((1, 32, 32, 3), np.uint8)
    img[0, 4, 7] = (255, 51, 0)
    x, _ = data.as_tensors(Dataset("cifar10", "test", img, np.array([0]), ()))
    assert x.shape == (1, 3, 32, 32) and x.is_contiguous()
    assert x[0, :, 4, 7].tolist() == pytest.approx([1.0, 0.2, 0.0])

    seq = np.random.default_rng(0).normal(size=(3, 128, 6)).astype(np.float32)
    har = Dataset("har", "test", seq, np.array([0, 1, 2]), ())
    x, _ = data.as_tensors(har)
    assert x.shape == (3, 6, 128)
    np.testing.assert_array_equal(x.numpy(), seq.transpose(0, 2, 1))
    x[0, 0, 0] = 123.0  # tensors are copies: the frozen dataset is not modified
    assert seq[0, 0, 0] != 123.0

    feats = np.linspace(-1, 1, 617 * 2, dtype=np.float32).reshape(2, 617)
    x, _ = data.as_tensors(Dataset("isolet", "test", feats, np.array([0, 25]), ()))
    np.testing.assert_array_equal(x.numpy(), feats)

    with pytest.raises(DatasetError, match="unknown dataset"):
        data.as_tensors(Dataset("nope", "test", feats, np.array([0, 1]), ()))


def test_loader_is_deterministic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_mnist(tmp_path, n=40)
    monkeypatch.setenv("RAPIDNN_DATA", str(tmp_path))

    def order(seed: int, split: str = "train") -> list[int]:
        return [int(v) for _, y in data.loader("mnist", split, batch_size=8, seed=seed) for v in y]

    torch.manual_seed(123)
    a = order(7)
    torch.manual_seed(456)  # the global RNG does not matter
    assert order(7) == a
    assert order(8) != a
    assert sorted(a) == sorted((np.arange(40) % 10).tolist())
    assert order(0, "test") == (np.arange(40) % 10).tolist()  # test split: no shuffling
    xb, yb = next(iter(data.loader("mnist", "test", batch_size=5)))
    assert xb.shape == (5, 1, 28, 28) and yb.dtype == torch.int64


def test_dataset_repr_is_short(tmp_path: Path) -> None:
    make_mnist(tmp_path)
    ds = data.load("mnist", "test", root=tmp_path)
    assert repr(ds) == (
        "Dataset(name='mnist', split='test', x=uint8(6, 28, 28), y=int64(6,), classes=10)"
    )
    assert len(ds) == 6
    with pytest.raises(AttributeError):
        ds.name = "other"  # type: ignore[misc]
