"""Peak memory of `resnets serve` under a hostile mix of requests: the bound its limits keep it within.

    python benchmarks/serve_memory.py --checkpoint RUN [--clients 8] [-- SERVE FLAGS ...]

Starts `resnets serve --checkpoint RUN` (one worker, on a free port of 127.0.0.1, with its default limits unless
SERVE FLAGS say otherwise), and has N concurrent clients each send the whole mix below, in its own order: images
that compress to almost nothing but decode to tens of millions of pixels, many of them in one multipart request,
long thin strips, decompression bombs, and a good image. It prints each kind's answers (HTTP status: count) and the
server's peak resident memory (VmHWM, which includes the model and the Python runtime) after startup and after the
mix. Exits 1 if a good image was not answered 200 or the server answered 500 or crashed.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
from PIL import Image

STARTUP_S = 300


def flat_png(width: int, height: int, mode: str = "RGB", fmt: str = "PNG") -> bytes:
    """One colour: a few hundred bytes or kilobytes (of PNG, or `fmt`) that decode to width * height pixels."""
    buffer = io.BytesIO()
    Image.new(mode, (width, height), 200).save(buffer, fmt)
    return buffer.getvalue()


def claimed_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height: refused from its header, it never needs real pixels."""
    data = bytearray(flat_png(8, 8))
    data[16:24] = struct.pack(">II", width, height)  # IHDR's width and height, then its CRC over type and data
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def hostile_mix() -> dict[str, list[tuple[str, bytes]]]:
    """Each kind of request as its files: one file is sent as the raw body, several as multipart files."""
    big, small = flat_png(7000, 7000), flat_png(32, 32)  # 49M pixels in ~140 KB, under --max-pixels' 50M
    return {
        "good 32x32": [("good.png", small)],
        "7000x7000 (49M pixels)": [("big.png", big)],
        "7000x7000 16-bit grayscale": [("big16.png", flat_png(7000, 7000, "I;16"))],
        "7000x7000 RGBA": [("rgba.png", flat_png(7000, 7000, "RGBA"))],
        "7000x7000 JPEG": [("big.jpg", flat_png(7000, 7000, fmt="JPEG"))],
        "4000x4000": [("4k.png", flat_png(4000, 4000))],
        "2 x 7000x7000 in one request": [(f"big{i}.png", big) for i in range(2)],
        "10 x 7000x7000 in one request": [(f"big{i}.png", big) for i in range(10)],
        "64 x 7000x7000 in one request": [(f"big{i}.png", big) for i in range(64)],
        "64 x 32x32 in one request": [(f"small{i}.png", small) for i in range(64)],
        "65 x 32x32 in one request": [(f"small{i}.png", small) for i in range(65)],
        "100000x1 strip": [("strip.png", flat_png(100000, 1))],
        "1x100000 strip": [("strip.png", flat_png(1, 100000))],
        "50000x1000 strip (50M pixels)": [("thin.png", flat_png(50000, 1000))],
        "9000x9000 (81M pixels)": [("9k.png", claimed_png(9000, 9000))],
        "100000x100000 bomb": [("bomb.png", claimed_png(100000, 100000))],
    }


def post(client: httpx.Client, url: str, files: list[tuple[str, bytes]]) -> int:
    """The status of one request (0 if the server gave no answer)."""
    try:
        if len(files) == 1:
            return client.post(f"{url}/predict", content=files[0][1], params={"name": files[0][0]}).status_code
        parts = [("files", (name, data, "image/png")) for name, data in files]
        return client.post(f"{url}/predict", files=parts).status_code
    except httpx.HTTPError:
        return 0


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set size so far (VmHWM), in MB."""
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024 / 1e6


def start_server(checkpoint: str, flags: list[str]) -> tuple[subprocess.Popen, str]:
    """`resnets serve` on a free local port, once /health answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "resnets", "serve", "--checkpoint", checkpoint, "--port", str(port), *flags]
    process = subprocess.Popen(command)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.5)
    process.kill()
    raise SystemExit(f"the server did not start within {STARTUP_S} s")


def main() -> int:
    """Run the mix against a fresh server; print the answers and the peak memory."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="the run or checkpoint to serve")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients, each sending the whole mix")
    parser.add_argument("flags", nargs="*", help="after --: more `resnets serve` flags (limits, --backend, ...)")
    args = parser.parse_args()
    mix = hostile_mix()
    process, url = start_server(args.checkpoint, args.flags)
    try:
        with httpx.Client(timeout=300) as client:
            assert post(client, url, mix["good 32x32"]) == 200
        idle = peak_rss_mb(process.pid)
        kinds = list(mix)

        def client_run(n: int) -> list[tuple[str, int]]:
            order = kinds[n % len(kinds) :] + kinds[: n % len(kinds)]
            with httpx.Client(timeout=300) as client:
                return [(kind, post(client, url, mix[kind])) for kind in order]

        start = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            answers = [a for part in pool.map(client_run, range(args.clients)) for a in part]
        wall = time.perf_counter() - start
        alive = process.poll() is None
        peak = peak_rss_mb(process.pid) if alive else float("nan")
    finally:
        process.terminate()
        process.wait(timeout=60)
    statuses = {kind: Counter(status for k, status in answers if k == kind) for kind in kinds}
    for kind in kinds:
        print(f"{kind:32} " + ", ".join(f"{status}: {n}" for status, n in sorted(statuses[kind].items())))
    print(f"{len(answers)} requests from {args.clients} clients in {wall:.1f} s")
    print(f"server peak RSS: {idle:.0f} MB after startup and a first request, {peak:.0f} MB after the mix")
    failed = [status for counts in statuses.values() for status in counts if status in (0, 500)]
    return 1 if failed or not alive or set(statuses["good 32x32"]) != {200} else 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    sys.exit(main())
