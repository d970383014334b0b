from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from resnets.core.atomic import atomic_write
from resnets.core.errors import UserError
from resnets.core.paths import default_cache_dir
from resnets.data import cache as cache_module
from resnets.data import load_split, open_split
from resnets.data.cache import cache_paths
from resnets.data.decode import decode_image

from .conftest import save_image


@pytest.fixture
def decode_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the files handed to the decoder, one entry per call."""
    calls: list[int] = []
    real = cache_module.decode_files

    def counting(files, **kwargs):
        calls.append(len(files))
        return real(files, **kwargs)

    monkeypatch.setattr(cache_module, "decode_files", counting)
    return calls


def load(root: Path, cache_dir: Path, **kwargs):
    return load_split(root, cache_dir=cache_dir, workers=1, progress=False, **kwargs)


def test_split_is_decoded_once_then_read_from_the_cache(image_folder: Path, cache_dir: Path, decode_calls) -> None:
    first = load(image_folder, cache_dir)
    written = {p: p.stat().st_mtime_ns for p in cache_dir.iterdir()}
    second = load(image_folder, cache_dir)
    assert decode_calls == [40]
    assert sorted(p.suffix for p in written) == [".json", ".npy", ".npy"]
    assert {p: p.stat().st_mtime_ns for p in cache_dir.iterdir()} == written
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)
    assert second.classes == first.classes


@pytest.mark.parametrize("change", ["add", "remove", "modify", "touch", "new class"])
def test_cache_is_rebuilt_when_the_split_changes(image_folder: Path, cache_dir: Path, decode_calls, change) -> None:
    before = load(image_folder, cache_dir)
    cat = image_folder / "train" / "cat"
    victim = sorted(cat.iterdir())[0]
    if change == "add":
        save_image(cat / "new.png", size=(32, 32))
    elif change == "remove":
        victim.unlink()
    elif change == "modify":  # new content of another size: a PNG of noise is far larger than the JPEG
        save_image(victim, size=(32, 32), fmt="PNG", seed=5)
    elif change == "touch":  # same content, mtime 1 ns later
        st = victim.stat()
        os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    else:  # a new train class shifts no labels here ("zebra" sorts last) but changes the class list
        save_image(image_folder / "train" / "zebra" / "z.png", size=(32, 32))
    after = load(image_folder, cache_dir)
    assert len(decode_calls) == 2
    assert len(after) == len(before) + {"add": 1, "remove": -1, "new class": 1}.get(change, 0)
    if change == "new class":
        assert after.classes[-1] == "zebra"


def test_val_cache_follows_a_change_of_the_train_classes(image_folder: Path, cache_dir: Path) -> None:
    save_image(image_folder / "val" / "cat" / "v.png", size=(32, 32))
    assert load(image_folder, cache_dir, split="val").labels.tolist() == [3]
    save_image(image_folder / "train" / "aardvark" / "a.png", size=(32, 32))  # sorts first: cat becomes label 4
    assert load(image_folder, cache_dir, split="val").labels.tolist() == [4]


def test_each_split_folder_has_its_own_cache(image_folder: Path, cache_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    (other / "train" / "only").mkdir(parents=True)
    save_image(other / "train" / "only" / "a.png", size=(32, 32))
    assert len(load(image_folder, cache_dir)) == 40
    assert len(load(other, cache_dir)) == 1
    assert len(load(image_folder, cache_dir)) == 40
    assert cache_paths(image_folder / "train", cache_dir) != cache_paths(other / "train", cache_dir)


def test_loaded_images_live_in_memory_not_in_the_cache_file(image_folder: Path, cache_dir: Path) -> None:
    images = load(image_folder, cache_dir).images
    copy = images.clone()
    npy = cache_paths(image_folder / "train", cache_dir).images
    with open(npy, "r+b") as f:  # overwrite the data in place, past the .npy header
        f.seek(-images.numel(), os.SEEK_END)
        f.write(bytes(images.numel()))
    assert torch.equal(images, copy) and images.is_contiguous() and images.dtype == torch.uint8


def test_damaged_cache_is_rebuilt(image_folder: Path, cache_dir: Path, decode_calls) -> None:
    expected = load(image_folder, cache_dir).images
    npy = cache_paths(image_folder / "train", cache_dir).images
    npy.write_bytes(npy.read_bytes()[:1000])
    assert torch.equal(load(image_folder, cache_dir).images, expected)
    assert len(decode_calls) == 2


def test_a_failed_build_leaves_no_cache(image_folder: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    load(image_folder, cache_dir)
    save_image(image_folder / "train" / "cat" / "new.png", size=(32, 32))

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_module, "decode_files", crash)
    with pytest.raises(KeyboardInterrupt):
        load(image_folder, cache_dir)
    assert not any(p.suffix == ".json" for p in cache_dir.iterdir())  # the stale entry can never be read again


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path: Path) -> None:
    target = tmp_path / "x.npy"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_write(target) as f:
        f.write(b"half")
        raise RuntimeError
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["x.npy"]
    with atomic_write(target) as f:
        f.write(b"new")
    assert target.read_bytes() == b"new" and os.listdir(tmp_path) == ["x.npy"]


def test_images_skipped_in_the_cache_still_fail_a_run_that_does_not_skip(image_folder: Path, cache_dir: Path) -> None:
    bad = image_folder / "train" / "dog" / "zzz.jpg"
    bad.write_bytes(b"")
    loaded = load(image_folder, cache_dir, skip_bad_images=True)
    assert (len(loaded), loaded.skipped) == (40, 1)
    with pytest.raises(UserError, match=re.escape(str(bad))):
        load(image_folder, cache_dir)


def test_cache_folder_is_the_argument_then_the_environment_then_home(
    image_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_split(image_folder, workers=1, progress=False)
    assert len(list((tmp_path / "default-cache").glob("train-*.images.npy"))) == 1  # RESNETS_CACHE, set by conftest
    monkeypatch.delenv("RESNETS_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "resnets"


def test_unwritable_cache_folder_is_an_error(image_folder: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(UserError, match=re.escape(f"cannot write the data cache in {blocker}")):
        load(image_folder, blocker)


def test_labels_and_counts_round_trip_through_the_cache(image_folder: Path, cache_dir: Path) -> None:
    (image_folder / "train" / "cat" / "notes.txt").write_text("x")
    for _ in range(2):  # build, then read back
        loaded = load(image_folder, cache_dir)
        assert loaded.labels.dtype == torch.int64
        assert np.bincount(loaded.labels.numpy()).tolist() == [4] * 10
        assert (loaded.ignored, loaded.skipped) == (1, 0)


SIZES = [(8, 8), (13, 5), (5, 21), (40, 30)]  # (W, H): a ragged split


@pytest.fixture
def ragged(tmp_path: Path) -> Path:
    for i, size in enumerate(SIZES):
        save_image(tmp_path / "ragged" / "train" / "c" / f"{i}.png", size=size, seed=i)
    return tmp_path / "ragged"


def open_cached(root: Path, cache_dir: Path):
    return open_split(root, decode_cache=True, cache_dir=cache_dir, workers=1, progress=False)


def test_images_of_any_size_are_cached_once_flat_and_read_memory_mapped(
    ragged: Path, cache_dir: Path, decode_calls
) -> None:
    first = open_cached(ragged, cache_dir)
    second = open_cached(ragged, cache_dir)
    assert decode_calls == [4]
    paths = cache_paths(ragged / "train", cache_dir)
    flat, index = np.load(paths.images), np.load(paths.index)
    assert flat.dtype == np.uint8 and flat.shape == (sum(3 * w * h for w, h in SIZES),)
    assert index.tolist() == [[i, 3, h, w] for i, (w, h) in enumerate(SIZES)]
    for i in range(4):
        assert torch.equal(second.image(i), first.image(i))
        assert torch.equal(second.image(i), torch.from_numpy(decode_image(ragged / "train" / "c" / f"{i}.png")))
    assert isinstance(second._pixels, np.memmap)


def test_a_ragged_cache_still_refuses_the_in_memory_loader(ragged: Path, cache_dir: Path, decode_calls) -> None:
    open_cached(ragged, cache_dir)
    with pytest.raises(UserError, match=r"1.png is 13x5 but .*0.png is 8x8; .*open_split"):
        load(ragged, cache_dir)
    assert decode_calls == [4]  # one cache serves both


@pytest.mark.parametrize("damage", ["index", "version"])
def test_an_old_or_damaged_ragged_cache_is_rebuilt(
    ragged: Path, cache_dir: Path, decode_calls, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    version = cache_module.CACHE_VERSION
    if damage == "version":  # written by the previous layout's code
        monkeypatch.setattr(cache_module, "CACHE_VERSION", version - 1)
    expected = open_cached(ragged, cache_dir).image(3)
    if damage == "version":
        monkeypatch.setattr(cache_module, "CACHE_VERSION", version)
    else:
        index = cache_paths(ragged / "train", cache_dir).index
        index.write_bytes(index.read_bytes()[:-8])
    assert torch.equal(open_cached(ragged, cache_dir).image(3), expected)
    assert decode_calls == [4, 4]


def test_datasets_go_under_the_one_cache_root_unless_resnets_data_says(tmp_path: Path, monkeypatch) -> None:
    from resnets.core.paths import default_data_dir
    from resnets.data.cifar import default_cifar10

    monkeypatch.delenv("RESNETS_DATA", raising=False)
    monkeypatch.setenv("RESNETS_CACHE", str(tmp_path / "cache"))
    assert default_cifar10().parent == tmp_path / "cache" / "data"
    monkeypatch.setenv("RESNETS_DATA", str(tmp_path / "datasets"))
    assert default_data_dir() == tmp_path / "datasets"
