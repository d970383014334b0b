"""Bounded load on a running `resnets serve`: N concurrent clients send a fixed number of requests; every one must be
answered, and the latency percentiles are printed.

    resnets serve --checkpoint RUN &        # or --onnx model.onnx
    python benchmarks/serve_load.py --url http://127.0.0.1:8000 --image cat.jpg [--clients 8] [--requests 200]

Each client has its own keep-alive connection and sends its share of the requests one after another (a request is
POST /predict with the image as the raw body). Exits 1 if any request failed or got no answer.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx


def client(url: str, body: bytes, count: int, timeout: float) -> list[tuple[float, int]]:
    """(seconds, status) of `count` requests in a row; status 0 for a request that got no answer."""
    results = []
    with httpx.Client(timeout=timeout) as session:
        for _ in range(count):
            start = time.perf_counter()
            try:
                status = session.post(f"{url}/predict", content=body).status_code
            except httpx.HTTPError:
                status = 0
            results.append((time.perf_counter() - start, status))
    return results


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def main() -> int:
    """Run the load, print requests/s and p50/p90/p99 latency, and whether every request was answered."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server's base URL")
    parser.add_argument("--image", required=True, help="the image file every request sends")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--requests", type=int, default=200, help="requests in all, shared by the clients")
    parser.add_argument("--timeout", type=float, default=60, help="seconds a request may take")
    args = parser.parse_args()
    body = Path(args.image).read_bytes()
    before = httpx.get(f"{args.url}/health").json()
    shares = [args.requests // args.clients + (i < args.requests % args.clients) for i in range(args.clients)]
    start = time.perf_counter()
    with ThreadPoolExecutor(args.clients) as pool:
        results = [r for part in pool.map(lambda n: client(args.url, body, n, args.timeout), shares) for r in part]
    wall = time.perf_counter() - start
    after = httpx.get(f"{args.url}/health").json()
    ok = [seconds for seconds, status in results if status == 200]
    failed = len(results) - len(ok)
    print(f"{len(results)} requests from {args.clients} clients in {wall:.1f} s: {len(ok) / wall:.1f} answered/s")
    if ok:
        p50, p90, p99 = (1000 * percentile(ok, q) for q in (50, 90, 99))
        print(f"latency p50 {p50:.1f} ms, p90 {p90:.1f} ms, p99 {p99:.1f} ms, max {1000 * max(ok):.1f} ms")
    batches = after["batches"] - before["batches"]
    images = after["images"] - before["images"]
    print(f"server: {images} images in {batches} forward batches (mean {images / max(batches, 1):.1f})")
    print("all answered" if not failed else f"{failed} requests failed or got no answer")
    if failed:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
