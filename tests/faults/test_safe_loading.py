"""No file the project loads can execute code; truncated and corrupted files give a clear error."""

import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from resnets.core.checkpoints import FORMAT, load_checkpoint
from resnets.core.errors import UserError
from resnets.weights.files import export_safetensors, load_trained

from .helpers import Payload, run_to_end


@pytest.fixture(scope="module")
def checkpoint(cifar_small, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("safe") / "run"
    proc = run_to_end(cifar_small, out, 2)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out / "last.pt"


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_malicious_pickle_is_refused_and_its_payload_never_runs(tmp_path, writer):
    marker, evil = tmp_path / "pwned", tmp_path / "evil.pt"
    state = {"format": FORMAT, "iteration": 1, "model": Payload(marker)}
    with evil.open("wb") as f:
        torch.save(state, f) if writer == "torch.save" else pickle.dump(state, f)
    with pytest.raises(UserError, match="refusing to load it"):
        load_checkpoint(evil)
    assert not marker.exists()
    proc = subprocess.run(
        [sys.executable, "-m", "resnets", "evaluate", "--checkpoint", str(evil), "--data", "x"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "refusing to load it" in proc.stderr and "Traceback" not in proc.stderr
    assert not marker.exists()
    # The payload is real: an unsafe loader would have run it.
    torch.load(evil, weights_only=False) if writer == "torch.save" else pickle.loads(evil.read_bytes())
    assert marker.exists()


def test_truncated_checkpoint_is_a_clear_error(checkpoint, tmp_path):
    cut = tmp_path / "cut.pt"
    cut.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    with pytest.raises(UserError, match="truncated or corrupted"):
        load_checkpoint(cut)


def test_flipped_bytes_in_the_weights_are_caught_by_the_checksum(checkpoint, tmp_path):
    data = bytearray(checkpoint.read_bytes())
    weights = torch.load(checkpoint, weights_only=True)["model"]["fc.weight"]
    needle = weights.reshape(-1)[:8].numpy().tobytes()
    at = bytes(data).index(needle)  # the bytes of one stored tensor
    data[at + 3] ^= 0x40
    bad = tmp_path / "flipped.pt"
    bad.write_bytes(bytes(data))
    with pytest.raises(UserError, match="checksum does not match"):
        load_checkpoint(bad)


def test_corrupted_safetensors_is_a_clear_error(checkpoint, tmp_path):
    good = tmp_path / "w.safetensors"
    export_safetensors(load_trained(checkpoint), good)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\xff" * 8 + good.read_bytes()[8:100])
    with pytest.raises(UserError, match="not a readable safetensors file"):
        load_trained(bad)
