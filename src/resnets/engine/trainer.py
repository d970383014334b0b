"""The one training engine: the lifecycle of a run, shared by every task (classification, detection).

A task is a subclass: it builds its data, model and optimizer (`use_optimizer`), and gives one step (`train_step`),
its log points (`log_point`) and its checkpoint's contents (`state`). The engine owns the rest: the run folder and
its lock, the resume policy, checkpoints (atomic; periodic, on SIGINT/SIGTERM with the resume command printed, never
of non-finite weights), the fp16 retry, metrics.csv, TensorBoard and sessions.jsonl, and torchrun's restarts.
Under torchrun every process is a replica; rank 0 alone prints and writes.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, ClassVar

import torch
from tqdm import tqdm

from ..core.atomic import check_output_folder, check_outside
from ..core.checkpoints import LAST, latest_checkpoint, load_checkpoint, save_checkpoint
from ..core.errors import UserError
from ..core.runtime import keep_freed_memory, resolve_device, resolve_precision
from .distributed import Group, process_group
from .lock import run_lock
from .metrics import COLUMNS, MetricsLog
from .run import RUN_FILES, config_path, refuse_foreign_config, write_config
from .sessions import record_session

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # save the current iteration, then stop
FORCE_HINT = "pass --force to replace it"  # how a trainer goes on over a user's files; experiments say otherwise


class TrainingDiverged(UserError):
    """The loss or the weights became NaN or infinite; the last good checkpoint is kept."""


class TrainingInterrupted(UserError):
    """SIGINT or SIGTERM: a checkpoint of the current iteration was saved; `--resume` continues from it."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum  # the shell's convention for a process ended by a signal


class Engine:
    """One run of a task: its place among torchrun's processes, device, precision, position and checkpoints.

    Subclasses set `command` (how a user starts the run, for the resume hint), `kind` (what their checkpoints hold)
    and `parse_config` (which config.json is theirs), build `model` and call `use_optimizer`, then `start`.
    """

    command: ClassVar[str] = "resnets train"
    kind: ClassVar[str] = "classifier"  # a checkpoint without a "kind" is a classifier's (all written before it)
    description = "train"  # the progress bar's label
    iters: int
    checkpoint_minutes: float
    model: torch.nn.Module

    def __init__(self, out: str | Path, device: str, precision: str, group: Group | None, replace_hint: str):
        self.run = Path(out)
        self.group = group or Group(resolve_device(device))
        self.device = self.group.device
        keep_freed_memory(self.device)  # no page faults per step on the CPU (runtime.py)
        self.precision = resolve_precision(precision, self.device)
        self.is_main = self.group.is_main
        self.replace_hint = replace_hint
        self.iteration = 0
        self.metrics: MetricsLog | None = None
        self.last_row: dict = {}

    @staticmethod
    def parse_config(values: dict[str, Any]) -> Any:
        """The task's settings from a config.json's values; raises for one that the task did not write."""
        raise NotImplementedError

    def find_checkpoint(self, resume: bool, force: bool) -> tuple[Path, dict] | None:
        """The checkpoint to continue from (the newest valid one): required with `resume`, refused without it; a
        fresh run replaces neither files that no run of this task wrote nor a checkpoint that does not load, unless
        `force`. Workers that torchrun restarts (--max-restarts) continue from the newest checkpoint, as --resume."""
        found = latest_checkpoint(self.run) if self.run.is_dir() else None
        lowest, highest = self.group.min_max(found[1]["iteration"] if found else -1)
        if lowest != highest:
            raise UserError(
                f"the processes found different checkpoints in {self.run}; put --out on a file system every node sees"
            )
        # Only the failed machine's torchrun counts the restart, so any rank's count decides.
        restarted = self.group.min_max(self.group.restarts)[1] > 0
        if found and not (resume or restarted):
            raise UserError(f"{found[0]} already exists; pass --resume to continue that run or choose another --out")
        if found and found[1].get("kind", "classifier") != self.kind:
            raise UserError(f"{found[0]} is not a {self.kind} checkpoint; choose another --out")
        unloadable = None if found else _unloadable(self.run)
        if resume and unloadable:
            raise UserError(f"--resume: {unloadable}; restore it, or start a new run in another --out")
        if resume and not found:
            raise UserError(f"--resume: {self.run} holds no valid checkpoint to continue; start without --resume")
        if not found and not force:
            ours = refuse_foreign_config(self.run, self.parse_config, self.command, self.replace_hint)
            check_output_folder(self.run, RUN_FILES, ours=ours, fix=self.replace_hint)
            if unloadable:
                raise UserError(f"{unloadable}; choose another --out, or pass --force to start afresh over it")
        return found

    def use_optimizer(self, parameters: Iterable[torch.nn.Parameter], momentum: float, weight_decay: float) -> None:
        """SGD over `parameters`, and fp16's grad scaler; the lr reaches it from the schedule only, in `optimize`."""
        self.optimizer = torch.optim.SGD(parameters, momentum=momentum, weight_decay=weight_decay)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.skipped_steps = 0  # fp16 steps the grad scaler skipped (overflow), each one retried

    def optimize(self, loss: torch.Tensor, lr: float) -> bool:
        """One SGD step on `loss` at `lr`; False when fp16's gradients overflowed: the grad scaler skipped the step
        (and lowered its scale), and the caller repeats the iteration, so the schedule and data order do not move."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        scale = self.scaler.get_scale() if self.scaler.is_enabled() else 1.0
        self.scaler.step(self.optimizer)
        self.scaler.update()
        taken = not self.scaler.is_enabled() or self.scaler.get_scale() >= scale
        self.skipped_steps += not taken
        return taken

    def restore_optimizer(self, state: dict) -> None:
        """The optimizer's and the grad scaler's state, and the position, from a checkpoint."""
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.iteration = state["iteration"]

    def start(self, config: dict[str, Any], resumed: bool, columns: tuple[str, ...] = COLUMNS, tb: bool = False):
        """Rank 0 writes the run's config.json and a line of sessions.jsonl, and opens metrics.csv (rows past a
        resumed iteration dropped); nothing is written before the data is read and a checkpoint restored."""
        if not self.is_main:
            return
        self.run.mkdir(parents=True, exist_ok=True)
        write_config(config_path(self.run), config)
        record_session(self.run, self.iteration, self.device, self.precision)
        self.metrics = MetricsLog(self.run, self.iteration if resumed else None, tb, columns)

    def state(self) -> dict:
        """Everything needed to continue exactly; a task adds what rebuilds its model."""
        return {
            "iteration": self.iteration,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
        }

    def save(self) -> None:
        """A checkpoint of the current iteration (a task may write more files, see `write_checkpoint`)."""
        self.write_checkpoint((LAST,))

    def write_checkpoint(self, names: tuple[str, ...]) -> None:
        """Rank 0 writes the state to each of `names`; the others wait, so none runs ahead (or exits) meanwhile.
        Weights that are not all finite are never saved: the checkpoint kept is the last good one."""
        bad = non_finite(self.model, self.optimizer)  # the same on every rank: DDP keeps the replicas equal
        if bad:
            raise self.diverged(
                f"{bad} weights or optimizer values became NaN or infinite by iteration {self.iteration}"
            )
        if self.is_main:
            state = self.state()
            for name in names:
                save_checkpoint(self.run / name, state)
        self.group.barrier()
        self._saved = (self.iteration, time.monotonic())

    def diverged(self, what: str) -> TrainingDiverged:
        """The one-line error of a run whose loss or weights stopped being finite, saying what was kept."""
        last = self.run / LAST
        kept = f"the last good checkpoint {last} is kept" if last.is_file() else "no checkpoint was written"
        return TrainingDiverged(f"{what}; {kept}; try a lower --lr or --precision fp32")

    def check_loss(self, loss: float) -> None:
        """Stop the run (keeping the last good checkpoint) when the mean loss `loss` is not finite."""
        if not math.isfinite(loss):
            raise self.diverged(f"loss became {loss} by iteration {self.iteration}")

    def log(self, message: str) -> None:
        """Print on rank 0, above the progress bar."""
        if self.is_main:
            tqdm.write(message)

    def fit(self) -> dict:
        """Train from the current iteration to `iters`; SIGINT and SIGTERM save the current iteration and stop with
        the command that resumes. Returns the last metrics row."""
        self._saved = (self.iteration, time.monotonic())
        bar = tqdm(
            total=self.iters, initial=self.iteration, unit="it", disable=not self.is_main, dynamic_ncols=True,
            mininterval=1.0, desc=self.description,
        )  # fmt: skip
        with signals_caught() as caught, bar:
            self.begin()
            while self.iteration < self.iters:
                if not self.train_step():
                    continue
                self.iteration += 1
                bar.update(1)
                at_log = self.log_point(bar)
                self._checkpoint_if_due(at_log, caught)
        if self.metrics:
            self.metrics.close()
        return self.last_row

    def begin(self) -> None:
        """Ready the task's running sums before the first step of this session."""

    def train_step(self) -> bool:
        """One iteration's step; False when it was not taken (fp16 overflow) and must be repeated."""
        raise NotImplementedError

    def log_point(self, bar: tqdm) -> bool:
        """After each step: write metrics, validate or save where due; True at the iterations where all ranks
        agree (there the engine checks signals and the clock under torchrun)."""
        raise NotImplementedError

    def save_due(self) -> bool:
        """Whether the task's own rule asks for a checkpoint now (beside the clock and signals)."""
        return False

    def _checkpoint_if_due(self, at_log: bool, caught: list[int]) -> None:
        """Save last.pt when `checkpoint_minutes` passed since the last save, the task asks, or a signal asks to
        stop (then stop). Under torchrun the ranks agree at log points only: all save (and stop) at one iteration."""
        if self.group.active and not at_log:
            return
        due = time.monotonic() - self._saved[1] >= 60 * self.checkpoint_minutes or self.save_due()
        signum = caught[-1] if caught else 0
        if self.group.active:
            due, signum = self.group.from_main(float(due)) > 0, self.group.min_max(signum)[1]
        if (due or signum) and self._saved[0] != self.iteration:
            self.save()
        if signum:
            if self.metrics:
                self.metrics.close()
            raise TrainingInterrupted(
                f"{signal.Signals(signum).name} at iteration {self.iteration}: saved {self.run / LAST}; continue "
                f"with: {self.command} --out {self.run} --resume",
                signum,
            )


def non_finite(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """How many values of the model's parameters and buffers and of the optimizer's state are NaN or infinite."""
    tensors = [*model.state_dict().values()]
    tensors += [v for state in optimizer.state.values() for v in state.values() if isinstance(v, torch.Tensor)]
    return sum(int((~torch.isfinite(t)).sum()) for t in tensors if t.is_floating_point())


@contextmanager
def signals_caught() -> Iterator[list[int]]:
    """SIGINT and SIGTERM, while the block runs, only append their number to the yielded list."""
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():  # handlers can only be set there
        yield caught
        return
    previous = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in STOP_SIGNALS}
    try:
        yield caught
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _unloadable(run: Path) -> str | None:
    """Why the first checkpoint file in `run` does not load, or None if it holds none (once none of them loads)."""
    for path in sorted(run.glob("*.pt")) if run.is_dir() else ():
        try:
            load_checkpoint(path)
        except UserError as e:
            return str(e)
    return None


def train_run(make: Callable[[Group], Engine], out: str | Path, data: str | Path | None, device: str, group=None):
    """Run (or resume) one run of a task, data-parallel over torchrun's processes; returns rank 0's last metrics row
    (the other ranks: an empty one, so that only rank 0 reports it).

    The run folder is locked meanwhile: a second trainer on it is refused. It may not lie inside the data folder."""
    if data:
        check_outside(Path(out), [Path(data).expanduser()])
    with ExitStack() as stack:
        group = group or stack.enter_context(process_group(device))
        stack.enter_context(run_lock(Path(out), take=group.is_main))
        row = make(group).fit()
        return row if group.is_main else {}
