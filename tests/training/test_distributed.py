"""Data-parallel training under torchrun, on the CPU with gloo: one process's result, restarts, the helpers."""

import copy
import csv
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch import nn

from resnets import create_model
from resnets.core.checkpoints import load_checkpoint
from resnets.engine.distributed import GlobalBatchNorm2d, process_group, sync_batchnorm
from resnets.training.config import TrainConfig
from resnets.training.loop import train

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
TINY = dict(model="resnet20", batch_size=32, val_split=100, precision="fp32", eval_batch_size=50)
TIMEOUT = 300  # seconds; gloo on two busy cores is slow, but a hung job must still fail the test


def torchrun(*launcher: str, data: Path, out: Path, **values) -> list[str]:
    """The command line of `torchrun LAUNCHER... -m resnets train` with TrainConfig `values` as flags."""
    flags = []
    for name, value in values.items():
        flag = "--" + name.replace("_", "-")
        flags += [flag] if value is True else [flag, str(value)]
    return [*TORCHRUN, *launcher, "-m", "resnets", "train", "--data", str(data), "--out", str(out), *flags]


@contextmanager
def launched(command: list[str], log: Path, **env: str) -> Iterator[subprocess.Popen]:
    """torchrun running `command` with its output in `log`; it and its workers are killed if the block leaves early."""
    with log.open("w") as out:
        agent = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env}, start_new_session=True
        )
    try:
        yield agent
    finally:
        if agent.poll() is None:
            os.killpg(agent.pid, signal.SIGKILL)
            agent.wait()


def test_two_processes_with_sync_bn_match_one_process_with_the_same_global_batch(cifar_small, tmp_path):
    # fp32 sums in another order (BN statistics, gradients) differ by rounding alone; at the recipe's lr 0.1,
    # 20 steps of a fresh net amplify rounding past any tolerance (so do channels_last vs contiguous in one
    # process), at 3e-4 it stays below 1e-5 while unsynchronised BN is off by 5e-4.
    values = dict(TINY, iters=20, eval_every=20, lr=3e-4, sync_bn=True, deterministic=True)
    log = tmp_path / "torchrun.log"
    with launched(torchrun(data=cifar_small, out=tmp_path / "two", **values), log) as agent:
        assert agent.wait(TIMEOUT) == 0, log.read_text()[-3000:]
    train(TrainConfig(data=str(cifar_small), out=str(tmp_path / "one"), **values))
    two, one = (load_checkpoint(tmp_path / run / "last.pt")["model"] for run in ("two", "one"))
    assert list(two) == list(one)  # torchvision's names: no DDP "module." prefix, SyncBN keeps BN's keys
    for key, value in one.items():
        if key.endswith("num_batches_tracked"):
            assert torch.equal(two[key], value), key
        elif "running_" in key:  # BN's running means and variances: compared relative to their size
            torch.testing.assert_close(two[key], value, rtol=1e-3, atol=1e-4, msg=key)
        else:
            assert (two[key] - value).abs().max() <= 1e-4, key


def children(pid: int) -> list[int]:
    """The ids of the processes whose parent is `pid`, read from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (name)": state, ppid, ...
        except (OSError, IndexError):
            continue  # the process ended meanwhile
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return sorted(found)


def kill_a_worker_after_the_first_checkpoint(command: list[str], run: Path, log: Path) -> str:
    """Run torchrun `command` (2 workers, --max-restarts), SIGKILL one worker once RUN/last.pt exists, and return
    the log after torchrun has finished successfully."""
    # See docs/training.md: without it, the restarted workers may read their predecessors' addresses.
    with launched(command, log, TORCH_DISABLE_SHARE_RDZV_TCP_STORE="1") as agent:
        deadline = time.monotonic() + TIMEOUT
        while not (run / "last.pt").exists():
            assert agent.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
        workers = children(agent.pid)
        assert len(workers) == 2, workers
        os.kill(workers[0], signal.SIGKILL)
        agent.wait(TIMEOUT)
    output = log.read_text()
    assert agent.returncode == 0, output[-3000:]
    return output


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds torchrun's workers through /proc")
def test_a_killed_worker_is_restarted_and_the_run_completes(cifar_small, tmp_path):
    run, log = tmp_path / "run", tmp_path / "torchrun.log"
    command = torchrun("--max-restarts", "1", data=cifar_small, out=run, **TINY, iters=12, eval_every=3)
    output = kill_a_worker_after_the_first_checkpoint(command, run, log)
    assert "resuming" in output  # the restarted workers continued from the checkpoint
    assert load_checkpoint(run / "last.pt")["iteration"] == 12
    with (run / "metrics.csv").open() as f:
        assert [int(row["iteration"]) for row in csv.DictReader(f)] == [3, 6, 9, 12]


def test_without_torchrun_a_process_is_rank_0_of_1_and_collectives_do_nothing(monkeypatch):
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    with process_group("cpu") as group:
        assert (group.rank, group.world_size, group.is_main, group.active) == (0, 1, True, False)
        assert not dist.is_initialized()
        values = torch.tensor([1.5, 2.0])
        assert torch.equal(group.sum(values), values)
        assert group.from_main(3.25) == 3.25 and group.min_max(7) == (7, 7)
        model = nn.Linear(2, 2)
        assert group.data_parallel(model) is model
        with group.main_first():
            group.barrier()


def test_torchrun_with_one_process_starts_no_group_but_counts_restarts(monkeypatch):
    for name, value in dict(RANK=0, LOCAL_RANK=0, WORLD_SIZE=1, TORCHELASTIC_RESTART_COUNT=2).items():
        monkeypatch.setenv(name, str(value))
    with process_group("cpu") as group:
        assert (group.world_size, group.restarts, group.active) == (1, 2, False)
        assert not dist.is_initialized()


def test_sync_batchnorm_replaces_every_batchnorm_and_keeps_parameters_and_names():
    model = create_model("resnet20")
    parameters, keys = list(model.parameters()), list(model.state_dict())
    batchnorms = sum(type(m) is nn.BatchNorm2d for m in model.modules())
    synced = sync_batchnorm(model, torch.device("cpu"))
    assert sum(type(m) is GlobalBatchNorm2d for m in synced.modules()) == batchnorms == 19
    assert all(a is b for a, b in zip(parameters, synced.parameters(), strict=True))  # the optimizer's tensors
    assert list(synced.state_dict()) == keys


@pytest.fixture
def one_process_group(tmp_path):
    dist.init_process_group("gloo", init_method=(tmp_path / "store").as_uri(), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_global_batchnorm_is_batchnorm_on_one_rank(one_process_group):
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(3).double()
    nn.init.uniform_(bn.weight)
    nn.init.uniform_(bn.bias)
    synced = GlobalBatchNorm2d.from_batchnorm(copy.deepcopy(bn))
    for _ in range(2):  # the running statistics move twice
        x = (torch.randn(4, 3, 5, 5, dtype=torch.float64) * 3 + 2).requires_grad_()
        target = torch.randn(4, 3, 5, 5, dtype=torch.float64)
        expected = torch.autograd.grad((bn(x) * target).sum(), (x, bn.weight, bn.bias))
        got = torch.autograd.grad((synced(x) * target).sum(), (x, synced.weight, synced.bias))
        torch.testing.assert_close(got, expected)
    for (name, a), b in zip(bn.state_dict().items(), synced.state_dict().values(), strict=True):
        torch.testing.assert_close(b, a, msg=name)
    bn.eval()
    synced.eval()
    torch.testing.assert_close(synced(x), bn(x))
    assert GlobalBatchNorm2d(3)(torch.randn(2, 3, 4, 4).bfloat16()).dtype == torch.bfloat16
