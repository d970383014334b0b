"""Inference images/s and latency of the ways to run a trained ResNet on this machine, against PyTorch eager fp32.

For each network and batch size, in one run on the same CPU: PyTorch eager fp32 (contiguous NCHW, the baseline),
channels_last, bf16 autocast (channels_last; where the CPU has native bf16), torch.compile (channels_last fp32;
where it compiles), and ONNX Runtime (the graph `resnets export --format onnx` writes, CPU provider). Each row
prints the ratio of its images/s to the baseline's, and each fp32 path's largest logit difference from it (bf16's
too, which shows why it is not predict's default).

    python benchmarks/inference.py [--models resnet50:224,resnet20:32] [--batches 1,32] [--rounds 5] [--iters 10]

With `--int8 THREADS` (e.g. `--int8 1,2`) it prints the int8 table instead: per network, batch size and thread count
(torch's and ONNX Runtime's intra-op threads), eager fp32, ONNX Runtime fp32 and ONNX Runtime int8 (the graph of
`resnets export --int8`: inference.quantize, calibrated here on random inputs, which sets ranges but not speed) in
images/s, and the int8/fp32 ratio of the two ONNX Runtime paths. Run each thread count with OMP_NUM_THREADS set to it.

A figure is the median over `--rounds` rounds of `--iters` forward passes (after `--warmup` passes), since single
runs on a shared machine vary; latency is a forward pass's time (the batch's, not per image).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from resnets import create_model
from resnets.core.runtime import autocast, describe_device, resolve_precision
from resnets.weights.files import TrainedModel

Runner = Callable[[torch.Tensor], torch.Tensor]
CHANNELS_LAST = torch.channels_last


def time_runner(run: Runner, x: torch.Tensor, rounds: int, iters: int, warmup: int) -> list[float]:
    """Seconds per forward pass, one figure per round."""
    for _ in range(warmup):
        run(x)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(iters):
            run(x)
        times.append((time.perf_counter() - start) / iters)
    return times


def runners(model: torch.nn.Module, size: int, work: Path, name: str) -> dict[str, Runner | str]:
    """Every path, or the reason it is not available here (a string)."""
    eager = model.eval()
    last = create_model(name).eval().to(memory_format=torch.channels_last)
    last.load_state_dict(eager.state_dict())
    found: dict[str, Runner | str] = {}
    found["eager fp32 (contiguous)"] = lambda x: eager(x)
    found["channels_last fp32"] = lambda x: last(x.contiguous(memory_format=torch.channels_last))
    cpu = torch.device("cpu")
    if resolve_precision("auto", cpu) == "bf16":

        def bf16(x):
            with autocast(cpu, "bf16"):
                return last(x.contiguous(memory_format=torch.channels_last)).float()

        found["bf16 autocast (channels_last)"] = bf16
    else:
        found["bf16 autocast (channels_last)"] = "no native bf16 on this CPU"
    try:
        compiled = torch.compile(last)
        compiled(torch.zeros(1, 3, size, size).contiguous(memory_format=torch.channels_last))
        found["torch.compile (channels_last fp32)"] = lambda x: compiled(x.contiguous(memory_format=CHANNELS_LAST))
    except Exception as e:  # a missing compiler or an unsupported op: reported, not fatal
        found["torch.compile (channels_last fp32)"] = f"does not compile: {type(e).__name__}"
    try:
        from resnets.inference.onnx_export import export_onnx
        from resnets.inference.onnx_runtime import new_session

        trained = TrainedModel(name, eager, torch.zeros(3, 1, 1), [], {"crop_size": size}, None)
        path = work / f"{name}.onnx"
        export_onnx(trained, path)
        session = new_session(path)
        found["ONNX Runtime (CPU)"] = lambda x: torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
    except Exception as e:
        found["ONNX Runtime (CPU)"] = f"not available: {type(e).__name__}: {str(e)[:80]}"
    return found


def instruction_set() -> str:
    """The CPU's int8 and bf16 matrix instructions (AMX and AVX512-VNNI run int8 natively; AVX2 alone does not)."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "instruction set unknown (no /proc/cpuinfo)"
    named = ["amx_int8", "amx_bf16", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512f", "avx2"]
    return "CPU flags: " + (", ".join(flag for flag in named if flag in flags) or "none of " + ", ".join(named))


def int8_sessions(name: str, size: int, work: Path, threads: int):
    """The eager model and ONNX Runtime sessions of its fp32 and int8 graphs, on `threads` threads."""
    from resnets.inference.onnx_export import export_onnx
    from resnets.inference.onnx_runtime import new_session
    from resnets.inference.quantize import CALIBRATION_BATCH, quantize_graph

    eager = create_model(name).eval()
    trained = TrainedModel(name, eager, torch.zeros(3, 1, 1), [], {"crop_size": size}, None)
    fp32, int8 = work / f"{name}.onnx", work / f"{name}-int8.onnx"
    export_onnx(trained, fp32)
    calibration = [torch.randn(CALIBRATION_BATCH, 3, size, size).numpy() for _ in range(2)]
    quantize_graph(fp32, int8, calibration, work)
    return eager, new_session(fp32, threads), new_session(int8, threads)


def ort_runner(session) -> Runner:
    """A session as a Runner of the graph's first output."""
    return lambda x: torch.from_numpy(session.run(None, {"input": x.numpy()})[0])


def int8_table(args: argparse.Namespace) -> None:
    """Eager fp32, ONNX Runtime fp32 and int8 images/s per network, batch and thread count, and int8/fp32."""
    print(f"# {describe_device(torch.device('cpu'))}, torch {torch.__version__}; {instruction_set()}")
    print("| model | input | batch | threads | eager fp32 | ORT fp32 | ORT int8 | int8/fp32 (ORT) |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as work, torch.no_grad():
        for spec in args.models.split(","):
            name, size = spec.split(":")
            size = int(size)
            for threads in (int(t) for t in args.int8.split(",")):
                torch.set_num_threads(threads)
                torch.manual_seed(0)
                eager, fp32, int8 = int8_sessions(name, size, Path(work), threads)
                for batch in (int(b) for b in args.batches.split(",")):
                    x = torch.randn(batch, 3, size, size)
                    runs = [eager, ort_runner(fp32), ort_runner(int8)]
                    rates = [
                        batch / statistics.median(time_runner(run, x, args.rounds, args.iters, args.warmup))
                        for run in runs
                    ]
                    cells = " | ".join(f"{rate:.1f}" for rate in rates)
                    print(
                        f"| {name} | {size} | {batch} | {threads} | {cells} | {rates[2] / rates[1]:.2f}x |", flush=True
                    )


def main() -> None:
    """Parse the flags, time every path of every network and batch size, print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="resnet50:224,resnet20:32", help="NAME:INPUT_SIZE, comma-separated")
    parser.add_argument("--batches", default="1,32", help="batch sizes, comma-separated")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per figure (the median is reported)")
    parser.add_argument("--iters", type=int, default=10, help="forward passes per round")
    parser.add_argument("--warmup", type=int, default=3, help="untimed forward passes first")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--int8", help="thread counts, comma-separated: print the int8 table (see above) instead")
    args = parser.parse_args()
    if args.int8:
        int8_table(args)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# {describe_device(torch.device('cpu'))}, torch {torch.__version__}")
    print("| model | input | batch | path | images/s | latency (ms) | vs eager fp32 | max logit diff |")
    print("|---|---|---|---|---|---|---|---|")
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as work, torch.no_grad():
        for spec in args.models.split(","):
            name, size = spec.split(":")
            size = int(size)
            paths = runners(create_model(name), size, Path(work), name)
            for batch in (int(b) for b in args.batches.split(",")):
                x = torch.randn(batch, 3, size, size)
                reference = paths["eager fp32 (contiguous)"](x)
                base = None
                for label, run in paths.items():
                    if isinstance(run, str):
                        print(f"| {name} | {size} | {batch} | {label} | | | {run} | |")
                        continue
                    seconds = statistics.median(time_runner(run, x, args.rounds, args.iters, args.warmup))
                    rate = batch / seconds
                    base = base or rate
                    diff = float((run(x).float() - reference).abs().max())
                    print(
                        f"| {name} | {size} | {batch} | {label} | {rate:.1f} | {1000 * seconds:.1f} | "
                        f"{rate / base:.2f}x | {diff:.1e} |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
