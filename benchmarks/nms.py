"""NMS speed: resnets.detection.nms (blocked, exact greedy) against the textbook one-box-per-step loop, same run.

    python benchmarks/nms.py [--boxes 1000,10000] [--threshold 0.7] [--rounds 3]

Both give the same kept indices (checked); the figure is the median of `rounds` runs of each.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from resnets.detection import box_iou, nms


def loop_nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """The baseline: take the best remaining box, drop its overlaps, repeat (one Python step per kept box)."""
    order = torch.sort(scores, descending=True, stable=True).indices
    alive = torch.ones(len(order), dtype=torch.bool)
    ranked = boxes[order]
    kept = []
    for i in range(len(order)):
        if alive[i]:
            kept.append(i)
            alive[i + 1 :] &= box_iou(ranked[i : i + 1], ranked[i + 1 :])[0] <= threshold
    return order[torch.tensor(kept, dtype=torch.long)]


def median_seconds(fn, rounds: int, *args) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--boxes", default="1000,10000", help="comma-separated box counts")
    parser.add_argument("--threshold", type=float, default=0.7, help="IoU threshold (the RPN's 0.7)")
    parser.add_argument("--rounds", type=int, default=3, help="timed runs of each; the median is shown")
    args = parser.parse_args()
    g = torch.Generator().manual_seed(0)
    print(f"torch threads {torch.get_num_threads()}, IoU threshold {args.threshold}")
    for n in (int(v) for v in args.boxes.split(",")):
        xy = torch.rand(n, 2, generator=g) * 1000  # RPN-like: boxes of 0-300 px over a 1000 px image
        boxes = torch.cat([xy, xy + torch.rand(n, 2, generator=g) * 300], 1)
        scores = torch.rand(n, generator=g)
        ours = nms(boxes, scores, args.threshold)
        assert torch.equal(ours, loop_nms(boxes, scores, args.threshold)), "the two disagree"
        t_ours = median_seconds(nms, args.rounds, boxes, scores, args.threshold)
        t_loop = median_seconds(loop_nms, args.rounds, boxes, scores, args.threshold)
        print(f"{n} boxes ({len(ours)} kept): loop {t_loop:.3f} s, resnets {t_ours:.3f} s, {t_loop / t_ours:.1f}x")


if __name__ == "__main__":
    main()
