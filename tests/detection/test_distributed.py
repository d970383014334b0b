"""`resnets detect train` under torchrun on the CPU (gloo): two processes compute what one computes."""

from __future__ import annotations

import csv

import pytest
import torch
import torch.distributed as dist

from resnets.checkpoints import load_checkpoint
from resnets.cli import main
from tests.training.test_distributed import TIMEOUT, TORCHRUN, launched

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")

# A 4x4 RoI pool keeps conv5_x's cost per RoI small (2x2 after its stride): a step takes well under a second.
TINY = [
    "--backbone", "resnet18", "--min-size", "48", "--max-size", "64", "--precision", "fp32", "--lr", "0.02",
    "--images-per-batch", "2", "--set", "anchor_sizes=[16,32]", "--set", "rpn_pre_nms_train=200",
    "--set", "rpn_post_nms_train=32", "--set", "roi_batch_size=8", "--set", "rpn_batch_size=16",
    "--set", "rpn_min_size=0", "--set", "pooler_resolution=4", "--log-every", "1", "--checkpoint-every", "1",
]  # fmt: skip


def rows(run) -> list[dict[str, float]]:
    with (run / "metrics.csv").open() as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def test_two_processes_train_as_one_with_the_same_global_batch_and_resume_with_one(voc, tmp_path):
    two, one, log = tmp_path / "two", tmp_path / "one", tmp_path / "torchrun.log"
    command = [*TORCHRUN, "-m", "resnets", "detect", "train", "--data", str(voc), "--out", str(two), "--iters", "2"]
    with launched([*command, *TINY], log) as agent:
        assert agent.wait(TIMEOUT) == 0, log.read_text()[-3000:]
    assert log.read_text().count("iteration 2: loss") == 1  # rank 0 alone prints
    assert main(["detect", "train", "--data", str(voc), "--out", str(one), "--iters", "2", *TINY]) == 0
    # metrics.csv is written once (rank 0), and its loss is the global batch's: the mean over both ranks.
    assert [r["iteration"] for r in rows(two)] == [1, 2]
    for a, b in zip(rows(two), rows(one), strict=True):
        for key in ("loss", "rpn_cls", "rpn_box", "cls", "box"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), key

    def weights(run):
        state = load_checkpoint(run / "last.pt")
        return state["iteration"], state["model"]

    def assert_close(a, b):
        assert list(a) == list(b)  # the bare module's keys, no DDP "module." prefix
        for key, value in b.items():
            torch.testing.assert_close(a[key], value, rtol=1e-4, atol=1e-5, msg=key)

    (i, at_2), (j, one_at_2) = weights(two), weights(one)
    assert i == j == 2
    assert_close(at_2, one_at_2)
    # One process resumes the two-process run exactly as it continues its own run.
    for run in (two, one):
        assert main(["detect", "train", "--data", str(voc), "--out", str(run), "--iters", "3", *TINY, "--resume"]) == 0
    (_, at_3), (_, one_at_3) = weights(two), weights(one)
    assert_close(at_3, one_at_3)
    assert sum(not torch.equal(at_3[k], at_2[k]) for k in at_2) > 20  # the weights compared do train
