"""Image data (speechvq.data.images): MNIST IDX, CIFAR-10 binary, image folders and the built-in
images -> dumps, the dump's checks, and the training batches."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from speechvq.data.images.batches import ImageBatches, validation_batches
from speechvq.data.images.builtin import digit_fonts, prepare_builtin_images, render_images
from speechvq.data.images.dump import ImageDump, write_dump
from speechvq.data.images.sources import (CIFAR_RECORD, MnistSplit, parse_mnist_split,
                                          prepare_cifar10, prepare_folder, prepare_mnist,
                                          read_idx)
from speechvq.errors import DataError

ROOT = Path(__file__).resolve().parents[1]
# ../shared/data/real/mnist beside the checkout (the first 8,000 MNIST test digits); never committed
REAL_MNIST = next((p / "shared" / "data" / "real" / "mnist" for p in ROOT.parents
                   if (p / "shared" / "data" / "real" / "mnist").is_dir()), None)


def _idx(path: Path, array: np.ndarray, gz: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def _fake_mnist(root: Path, n: int = 30) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = np.arange(n) % 10
    root.mkdir(parents=True, exist_ok=True)
    for which, gz in (("train", True), ("t10k", False)):  # gzipped and plain
        _idx(root / f"{which}-images-idx3-ubyte{'.gz' if gz else ''}", images, gz)
        _idx(root / f"{which}-labels-idx1-ubyte{'.gz' if gz else ''}", labels, gz)
    return images, labels


def test_mnist_idx_gzipped_or_not_split_by_inclusive_ranges(tmp_path):
    images, labels = _fake_mnist(tmp_path / "mnist")
    splits = [parse_mnist_split("train=t10k:0-19"), parse_mnist_split("test=t10k:20-29"),
              MnistSplit("full", "train")]
    out = prepare_mnist(tmp_path / "mnist", tmp_path / "dump", splits)
    train, test, full = (ImageDump.open(out[s]) for s in ("train", "test", "full"))
    assert train.shape == (28, 28, 1) and len(train) == 20 and len(test) == 10 and len(full) == 30
    np.testing.assert_array_equal(test.images[:, :, :, 0], images[20:])
    np.testing.assert_array_equal(test.labels, labels[20:])
    assert train.classes == tuple(str(d) for d in range(10))
    stamp = (out["train"] / "images.npy").stat().st_mtime_ns
    prepare_mnist(tmp_path / "mnist", tmp_path / "dump", splits)  # complete: skipped
    assert (out["train"] / "images.npy").stat().st_mtime_ns == stamp
    with pytest.raises(DataError, match="already holds a dump made from"):
        prepare_mnist(tmp_path / "mnist", tmp_path / "dump", [parse_mnist_split("train=t10k")])


@pytest.mark.parametrize("damage, message", [
    (lambda raw: b"\x00\x00\x07\x03" + raw[4:], "not an IDX file"),
    (lambda raw: raw[:-5], "truncated or corrupt"),
    (lambda raw: raw[:3], "not an IDX file"),
])
def test_a_broken_idx_file_is_one_clear_error(tmp_path, damage, message):
    _fake_mnist(tmp_path)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DataError, match=message):
        read_idx(path)


@pytest.mark.parametrize("text", ["train=t10k:5-2", "train=mnist", "train t10k", "=t10k"])
def test_bad_mnist_splits_are_refused(text):
    with pytest.raises(DataError, match="MNIST split"):
        parse_mnist_split(text)


def test_mnist_errors_name_the_missing_file_and_the_range(tmp_path):
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte \(or .*\.gz\) not found"):
        prepare_mnist(tmp_path, tmp_path / "dump", [MnistSplit("test", "t10k")])
    _fake_mnist(tmp_path / "mnist")
    with pytest.raises(DataError, match="ends past the 30 images"):
        prepare_mnist(tmp_path / "mnist", tmp_path / "d", [parse_mnist_split("test=t10k:0-30")])


def _cifar_batch(path: Path, labels: list[int], seed: int) -> np.ndarray:
    """A CIFAR-10 binary batch: per record a label byte, then the R, G and B planes."""
    planes = np.random.default_rng(seed).integers(0, 256, (len(labels), 3, 32, 32), np.uint8)
    records = np.concatenate([np.array(labels, np.uint8)[:, None],
                              planes.reshape(len(labels), -1)], axis=1)
    assert records.shape[1] == CIFAR_RECORD
    path.write_bytes(records.tobytes())
    return planes.transpose(0, 2, 3, 1)  # NHWC


def test_cifar10_binary_records_become_nhwc_dumps(tmp_path):
    src = tmp_path / "cifar-10-batches-bin"
    src.mkdir()
    train = [_cifar_batch(src / f"data_batch_{k}.bin", [k, 9 - k], k) for k in range(1, 6)]
    test = _cifar_batch(src / "test_batch.bin", [3, 1, 4], 9)
    (src / "batches.meta.txt").write_text("\n".join(f"class{k}" for k in range(10)) + "\n\n")
    out = prepare_cifar10(tmp_path, tmp_path / "dump")  # the parent of cifar-10-batches-bin
    d_train, d_test = ImageDump.open(out["train"]), ImageDump.open(out["test"])
    assert len(d_train) == 10 and d_test.shape == (32, 32, 3)
    np.testing.assert_array_equal(d_train.images, np.concatenate(train))
    np.testing.assert_array_equal(d_test.images, test)
    assert d_test.labels.tolist() == [3, 1, 4] and d_train.classes[9] == "class9"


@pytest.mark.parametrize("damage, message", [
    ("short", "not a whole number of 3073-byte"),
    ("label", "label 10"),
    ("missing", "lacks data_batch_3.bin"),
    ("empty", "no CIFAR-10 binary batches"),
])
def test_cifar10_errors(tmp_path, damage, message):
    if damage != "empty":
        for k in range(1, 6):
            _cifar_batch(tmp_path / f"data_batch_{k}.bin", [0], k)
        _cifar_batch(tmp_path / "test_batch.bin", [0], 0)
    batch = tmp_path / "data_batch_3.bin"
    if damage == "short":
        batch.write_bytes(batch.read_bytes()[:-1])
    elif damage == "label":
        batch.write_bytes(b"\x0a" + batch.read_bytes()[1:])
    elif damage == "missing":
        batch.unlink()
    with pytest.raises(DataError, match=message):
        prepare_cifar10(tmp_path, tmp_path / "dump")


def _folder(root: Path) -> None:
    """train/{cat,dog} and val/{dog}: RGB PNG, grey JPEG, a wide image and an RGBA one."""
    for split, cls, name, mode, size in [("train", "cat", "a.png", "RGB", (40, 40)),
                                         ("train", "cat", "b.jpg", "L", (20, 30)),
                                         ("train", "dog", "c.png", "RGBA", (64, 32)),
                                         ("val", "dog", "d.PNG", "RGB", (50, 10))]:
        (root / split / cls).mkdir(parents=True, exist_ok=True)
        colour = 200 if mode == "L" else (10, 120, 240, 255)[:len(mode)]
        Image.new(mode, size, colour).save(root / split / cls / name)
    (root / "train" / "dog" / "notes.txt").write_text("not an image")


def test_image_folder_resize_crop_grey_to_rgb_and_one_label_map(tmp_path):
    _folder(tmp_path / "src")
    with pytest.warns(UserWarning, match="1 files that are not images"):
        out = prepare_folder(tmp_path / "src", tmp_path / "dump", image_size=16)
    train, val = ImageDump.open(out["train"]), ImageDump.open(out["val"])
    assert train.shape == (16, 16, 3) and len(train) == 3 and len(val) == 1
    assert train.classes == val.classes == ("cat", "dog")
    assert train.labels.tolist() == [0, 0, 1] and val.labels.tolist() == [1]
    assert (train.images[1] == 200).all()  # grey -> RGB, every channel the same
    assert train.images[2, 8, 8].tolist() == [10, 120, 240]  # alpha dropped
    with pytest.warns(UserWarning):
        grey = prepare_folder(tmp_path / "src" / "train", tmp_path / "grey", channels=1)
    assert ImageDump.open(grey["train"]).shape == (32, 32, 1)  # SRC/<class>/: one split


def test_a_corrupt_image_is_named(tmp_path):
    _folder(tmp_path / "src")
    (tmp_path / "src" / "val" / "dog" / "e.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(DataError, match=r"image '.*e\.jpg' cannot be read"):
        prepare_folder(tmp_path / "src" / "val", tmp_path / "dump")
    with pytest.raises(DataError, match="has no class folders"):
        prepare_folder(tmp_path / "src" / "val" / "dog", tmp_path / "dump2")


def test_dump_checks_its_files(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        ImageDump.open(tmp_path / "nothing")
    d = write_dump(tmp_path / "d", np.zeros((2, 4, 4, 3), np.uint8), [0, 1], ["a", "b"], {})
    assert not (tmp_path / "d.tmp").exists() and len(d) == 2
    (d.path / "classes.txt").write_text("a\n")
    with pytest.raises(DataError, match="labels outside"):
        ImageDump.open(d.path)
    np.save(d.path / "images.npy", np.zeros((2, 4, 4), np.float32))
    with pytest.raises(DataError, match="must be .N, H, W, C. uint8"):
        ImageDump.open(d.path)
    (d.path / "labels.npy").unlink()
    with pytest.raises(DataError, match="not an image dump .no labels.npy"):
        ImageDump.open(d.path)


def test_builtin_images_are_deterministic_cached_and_labelled(tmp_path, monkeypatch):
    monkeypatch.setenv("SPEECHVQ_CACHE", str(tmp_path / "cache"))
    names = [name for name, _ in digit_fonts()]
    assert len(names) >= 10 and "DejaVuSans.ttf" in names and "cmex10.ttf" not in names
    out = prepare_builtin_images(tmp_path / "a", size="tiny", seed=3)
    train, test = ImageDump.open(out["train"]), ImageDump.open(out["test"])
    assert (len(train), len(test)) == (512, 128) and train.shape == (32, 32, 3)
    assert set(train.labels.tolist()) == set(range(10))
    assert train.images.std() > 40  # photos, noise and digits, not a flat colour
    images, labels = render_images(8, 3, 1)  # the test split, rendered again
    np.testing.assert_array_equal(images, test.images[:8])
    np.testing.assert_array_equal(labels, test.labels[:8])
    assert not np.array_equal(train.images[:8], test.images[:8])
    cached = tmp_path / "cache" / "images" / "v1-tiny-seed3" / "train" / "images.npy"
    assert cached.stat().st_ino == (out["train"] / "images.npy").stat().st_ino  # linked
    again = prepare_builtin_images(tmp_path / "b", size="tiny", seed=3)
    np.testing.assert_array_equal(ImageDump.open(again["train"]).images, train.images)
    info = json.loads((out["train"] / "info.json").read_text())
    assert info["source"] == "builtin" and info["seed"] == 3


def test_batches_are_a_pure_function_of_seed_and_step_and_ranks_split_them(tmp_path):
    d = write_dump(tmp_path / "d", np.arange(10, dtype=np.uint8)[:, None, None, None]
                   .repeat(2, 1).repeat(2, 2).repeat(3, 3), np.arange(10) % 3, ["a", "b", "c"],
                   {})
    b = ImageBatches(d, 4, seed=7)
    again = ImageBatches(d, 4, seed=7)
    for step in (0, 1, 2, 9, 2):
        assert b[step]["image"].tolist() == again[step]["image"].tolist()
    first = np.concatenate([b.indices(s) for s in range(5)])  # 20 positions = 2 epochs
    assert sorted(first[:10]) == list(range(10)) and sorted(first[10:]) == list(range(10))
    batch = b[3]
    assert batch["image"].shape == (4, 3, 2, 2) and batch["image"].dtype.is_floating_point is False
    assert (batch["image"][:, 0, 0, 0].numpy() == b.indices(3)).all()
    assert (batch["label"].numpy() == b.indices(3) % 3).all()
    ranks = [ImageBatches(d, 4, seed=7, rank=r, world_size=2).indices(3) for r in range(2)]
    assert np.concatenate(ranks).tolist() == b.indices(3).tolist()
    held = validation_batches(d, 4, 9)
    assert [len(x["image"]) for x in held] == [4, 4, 1]


@pytest.mark.skipif(REAL_MNIST is None, reason="no real MNIST digits in ../shared/data/real/mnist")
def test_real_mnist_digits(tmp_path):
    out = prepare_mnist(REAL_MNIST, tmp_path, [parse_mnist_split("train=t10k:0-6999"),
                                               parse_mnist_split("test=t10k:7000-7999")])
    train, test = ImageDump.open(out["train"]), ImageDump.open(out["test"])
    assert (len(train), len(test)) == (7000, 1000) and test.shape == (28, 28, 1)
    assert np.bincount(train.labels, minlength=10).min() > 500  # every digit, roughly balanced
    assert 20 < float(test.images.mean()) < 50  # white digits on black, as MNIST is
