from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
import torch

from resnets.core.errors import UserError
from resnets.core.rng import IMAGENET_AUGMENT, seeded_generator
from resnets.data import ImageFiles, TrainLoader, open_split, scale_crop_flip
from resnets.data.sampler import EpochSampler

SMALL = {"scale_range": (40, 64), "crop": 32}  # small crops keep the tests fast; the paper's sizes are tested once


def take(loader: TrainLoader, start: int, count: int) -> list:
    return list(itertools.islice(loader.batches(start), count))


def assert_same(a: list, b: list) -> None:
    assert len(a) == len(b)
    for (i, images, labels, skipped), (j, images_b, labels_b, skipped_b) in zip(a, b):
        assert (i, skipped) == (j, skipped_b) and torch.equal(images, images_b) and torch.equal(labels, labels_b)


@pytest.fixture
def files(imagenette: Path) -> ImageFiles:
    return open_split(imagenette, progress=False)


def test_a_batch_is_the_sampled_images_scale_augmented_with_uniforms_from_seed_and_iteration(files) -> None:
    sampler = EpochSampler(len(files), 4, seed=3)
    [(iteration, images, labels, skipped)] = take(TrainLoader(files, sampler, seed=7, workers=0), 5, 1)
    assert (iteration, skipped) == (5, 0)
    assert images.shape == (4, 3, 224, 224) and images.dtype == torch.uint8 and labels.dtype == torch.int64
    indices = sampler.global_batch(5)
    uniforms = torch.rand(4, 4, generator=seeded_generator(7, IMAGENET_AUGMENT, 5))
    assert torch.equal(labels, files.labels[indices])
    for image, index, u in zip(images, indices, uniforms):
        assert torch.equal(image, scale_crop_flip(files.image(int(index)), u))


def test_workers_change_nothing_and_a_resumed_stream_repeats_the_same_batches(files) -> None:
    sampler = EpochSampler(len(files), 4, seed=0)  # 3 iterations per epoch: 7 cross two epoch boundaries
    serial = take(TrainLoader(files, sampler, seed=1, workers=0, **SMALL), 0, 7)
    parallel = TrainLoader(files, sampler, seed=1, workers=2, **SMALL)
    assert_same(take(parallel, 0, 7), serial)
    assert [i for i, *_ in serial] == list(range(7))
    assert_same(take(parallel, 4, 3), serial[4:])  # the same workers, restarted at iteration 4
    assert not torch.equal(serial[0][1], serial[3][1])


def test_flip_false_draws_the_same_numbers_and_leaves_the_crops_unflipped(files) -> None:
    sampler = EpochSampler(len(files), 12, seed=0)
    [(_, flipped, *_)] = take(TrainLoader(files, sampler, seed=2, workers=0, **SMALL), 0, 1)
    [(_, plain, *_)] = take(TrainLoader(files, sampler, seed=2, workers=0, flip=False, **SMALL), 0, 1)
    same = [torch.equal(p, f) for p, f in zip(plain, flipped)]
    assert all(s or torch.equal(p.flip(2), f) for s, p, f in zip(same, plain, flipped))
    assert 0 < sum(same) < len(same)


def test_two_ranks_shares_make_up_the_single_process_batch(files) -> None:
    whole = take(TrainLoader(files, EpochSampler(len(files), 6, seed=4), seed=5, workers=0, **SMALL), 0, 3)
    shares = [
        take(TrainLoader(files, EpochSampler(len(files), 6, 4, rank, 2), seed=5, workers=0, **SMALL), 0, 3)
        for rank in (0, 1)
    ]
    for (_, images, labels, _), (_, images0, labels0, _), (_, images1, labels1, _) in zip(whole, *shares):
        assert len(images0) == 3
        assert torch.equal(images, torch.cat([images0, images1])) and torch.equal(labels, torch.cat([labels0, labels1]))


@pytest.mark.parametrize("workers", [0, 2])
def test_a_truncated_jpeg_stops_with_one_line_naming_it_or_is_skipped_and_counted(imagenette_copy, workers) -> None:
    bad = sorted((imagenette_copy / "train").glob("*/*.JPEG"))[7]
    bad.write_bytes(bad.read_bytes()[:400])
    files = open_split(imagenette_copy, progress=False)
    sampler = EpochSampler(len(files), 4, seed=0)
    with pytest.raises(UserError, match=re.escape(f"cannot decode image {bad}")) as info:
        take(TrainLoader(files, sampler, seed=0, workers=workers, **SMALL), 0, 3)
    assert "\n" not in str(info.value)
    epoch = take(TrainLoader(files, sampler, seed=0, workers=workers, skip_bad_images=True, **SMALL), 0, 3)
    assert sum(skipped for *_, skipped in epoch) == 1 and sum(len(images) for _, images, *_ in epoch) == 11
    for iteration, images, labels, skipped in epoch:
        assert len(images) == len(labels) == 4 - skipped
        kept = [i for i in sampler.global_batch(iteration).tolist() if i != 7]
        assert torch.equal(labels, files.labels[kept])


def test_bad_settings_are_errors() -> None:
    sampler = EpochSampler(10, 2, seed=0)
    with pytest.raises(UserError, match="workers -1"):
        TrainLoader(None, sampler, 0, workers=-1)
    with pytest.raises(UserError, match=re.escape("scale_range 100,480 must be two shorter sides")):
        TrainLoader(None, sampler, 0, scale_range=(100, 480))


CTRL_C_SCRIPT = """
import itertools, os, signal, sys
from resnets.data import TrainLoader, open_split
from resnets.data.sampler import EpochSampler

signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (a background job starts with it ignored)
files = open_split(sys.argv[1], progress=False)
loader = TrainLoader(files, EpochSampler(len(files), 2, seed=0), seed=0, scale_range=(40, 64), crop=32, workers=1)
batches = loader.batches(0)
next(batches)
try:
    os.killpg(0, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group, workers included
    signal.pause()
except KeyboardInterrupt:
    pass
print("after Ctrl-C:", next(batches)[0])  # the main process decides what happens next; its workers still serve
"""


def test_ctrl_c_reaches_the_main_process_and_leaves_the_workers_alive(imagenette: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    script = tmp_path / "ctrl_c.py"
    script.write_text(CTRL_C_SCRIPT)
    run = subprocess.run(
        [sys.executable, str(script), str(imagenette)],
        capture_output=True,
        text=True,
        timeout=120,
        start_new_session=True,  # its own process group, so the SIGINT stays inside it
    )
    assert run.returncode == 0, run.stderr
    assert "after Ctrl-C: 1" in run.stdout
    assert "KeyboardInterrupt" not in run.stderr
