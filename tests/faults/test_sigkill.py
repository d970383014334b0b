"""SIGKILL during training and during a checkpoint write: never a partial checkpoint, and resume is exact."""

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from resnets.core.checkpoints import load_checkpoint

from .helpers import assert_same_weights, run_to_end, train_command

ITERS = 24


@pytest.fixture(scope="module")
def reference(cifar_small, tmp_path_factory):
    """The uninterrupted run every interrupted one must equal."""
    out = tmp_path_factory.mktemp("reference") / "run"
    proc = run_to_end(cifar_small, out, ITERS)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out / "last.pt"


def test_sigkill_at_random_moments(cifar_small, tmp_path, reference):
    run, rng = tmp_path / "killed", random.Random(0)
    kills = 0
    while kills < 4:
        resume = ["--resume"] if (run / "last.pt").exists() else []
        child = subprocess.Popen(
            train_command(cifar_small, run, ITERS, *resume), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        before = load_checkpoint(run / "last.pt")["iteration"] if resume else 0
        deadline = time.time() + 120
        while time.time() < deadline and child.poll() is None:  # wait for progress past the last checkpoint
            if (run / "last.pt").exists() and os.path.getmtime(run / "last.pt") > time.time() - 0.5 and not resume:
                break
            if resume and load_checkpoint(run / "last.pt")["iteration"] > before:
                break
            time.sleep(0.05)
        time.sleep(rng.uniform(0, 0.3))
        if child.poll() is not None:
            break  # finished before the kill landed
        child.send_signal(signal.SIGKILL)
        child.wait()
        kills += 1
        for checkpoint in run.glob("*.pt"):  # every checkpoint on disk is whole
            assert load_checkpoint(checkpoint)["iteration"] > 0
    assert kills >= 2
    proc = run_to_end(cifar_small, run, ITERS, "--resume")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_same_weights(run / "last.pt", reference)


DIES_IN_SECOND_SAVE = """
import io, os, signal, sys, torch
real_save, calls = torch.save, []
def dying_save(obj, f, *args, **kwargs):
    calls.append(1)
    if len(calls) == 2:  # the second checkpoint: write half of it, then die
        buffer = io.BytesIO()
        real_save(obj, buffer)
        f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(obj, f, *args, **kwargs)
torch.save = dying_save
from resnets.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigkill_during_a_checkpoint_write(cifar_small, tmp_path, reference):
    run = tmp_path / "run"
    command = train_command(cifar_small, run, ITERS)
    proc = subprocess.run([sys.executable, "-c", DIES_IN_SECOND_SAVE, *command[3:]], capture_output=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL
    assert load_checkpoint(run / "last.pt")["iteration"] == 2  # the first checkpoint, whole
    assert list(run.glob(".*.pt.*.part"))  # the half-written file (best.pt, here) never took its place
    proc = run_to_end(cifar_small, run, ITERS, "--resume")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_same_weights(run / "last.pt", reference)


# The ImageNet pipeline (Sec. 3.4) shrunk to 32x32 crops: images decoded and augmented by 2 DataLoader workers.
WORKERS_RUN = [
    *("--model", "resnet20", "--augmentation", "imagenet", "--scale-range", "36,44", "--crop-size", "32"),
    *("--test-resize", "36", "--val-split", "0", "--batch-size", "4", "--workers", "2", "--iters", "8"),
    *("--eval-every", "2", "--log-every", "2", "--precision", "fp32", "--deterministic", "--eval-batch-size", "8"),
]


def test_exact_resume_with_dataloader_workers(imagenette_small, tmp_path):
    def command(out, *extra):
        return [sys.executable, "-m", "resnets", "train", "--data", str(imagenette_small), "--out", str(out), *extra]

    reference = subprocess.run(command(tmp_path / "reference", *WORKERS_RUN), capture_output=True, timeout=300)
    assert reference.returncode == 0, reference.stderr[-2000:]
    run = tmp_path / "killed"
    proc = subprocess.run(
        [sys.executable, "-c", DIES_IN_SECOND_SAVE, *command(run, *WORKERS_RUN)[3:]], capture_output=True, timeout=300
    )
    assert proc.returncode == -signal.SIGKILL
    assert load_checkpoint(run / "last.pt")["iteration"] == 2  # killed at iteration 4, mid-epoch (3 an epoch)
    proc = subprocess.run(command(run, *WORKERS_RUN, "--resume"), capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_same_weights(run / "last.pt", tmp_path / "reference" / "last.pt")
