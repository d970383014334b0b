"""NMS speed: resnets.detection.nms (blocked, exact greedy) against the textbook one-box-per-step loop, same run.

    python benchmarks/nms.py [--boxes 1000,10000] [--threshold 0.7] [--rounds 3] [--max-kept 2000,300]

Two layouts: boxes spread at random over a 1000 px image (few overlaps, most kept), and boxes clustered around 30
objects as an RPN's top-scored proposals are (most suppressed). `--max-kept` also times the early stop that the RPN
uses (its post-NMS counts: 2000 in training, 300 in testing). Every result is checked against the loop's kept
indices (the early stop against their head); each figure is the median of `rounds` runs.
"""

from __future__ import annotations

import argparse
import functools
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


def random_layout(n: int, g: torch.Generator) -> torch.Tensor:
    """Boxes of 0-300 px anywhere in a 1000 px image."""
    xy = torch.rand(n, 2, generator=g) * 1000
    return torch.cat([xy, xy + torch.rand(n, 2, generator=g) * 300], 1)


def clustered_layout(n: int, g: torch.Generator) -> torch.Tensor:
    """Boxes jittered in position (30% of the side) and size around 30 objects of 50-300 px."""
    centres, sides = torch.rand(30, 2, generator=g) * 800, 50 + torch.rand(30, 2, generator=g) * 250
    k = torch.randint(0, 30, (n,), generator=g)
    xy = centres[k] + torch.randn(n, 2, generator=g) * sides[k] * 0.3
    wh = sides[k] * torch.exp(torch.randn(n, 2, generator=g) * 0.3)
    return torch.cat([xy - wh / 2, xy + wh / 2], 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--boxes", default="1000,10000", help="comma-separated box counts")
    parser.add_argument("--threshold", type=float, default=0.7, help="IoU threshold (the RPN's 0.7)")
    parser.add_argument("--rounds", type=int, default=3, help="timed runs of each; the median is shown")
    parser.add_argument("--max-kept", default="2000,300", help="comma-separated early stops to time too ('' for none)")
    args = parser.parse_args()
    g = torch.Generator().manual_seed(0)
    stops = [int(v) for v in args.max_kept.split(",") if v.strip()]
    print(f"torch threads {torch.get_num_threads()}, IoU threshold {args.threshold}")
    for layout in (random_layout, clustered_layout):
        for n in (int(v) for v in args.boxes.split(",")):
            boxes, scores = layout(n, g), torch.rand(n, generator=g)
            expected = loop_nms(boxes, scores, args.threshold)
            assert torch.equal(nms(boxes, scores, args.threshold), expected), "the two disagree"
            t_loop = median_seconds(loop_nms, args.rounds, boxes, scores, args.threshold)
            t_ours = median_seconds(nms, args.rounds, boxes, scores, args.threshold)
            line = f"{layout.__name__} {n} boxes ({len(expected)} kept): loop {t_loop:.3f} s, "
            line += f"resnets {t_ours:.3f} s, {t_loop / t_ours:.1f}x"
            for stop in stops:
                early = functools.partial(nms, max_kept=stop)
                assert torch.equal(early(boxes, scores, args.threshold), expected[:stop]), "early stop disagrees"
                t_early = median_seconds(early, args.rounds, boxes, scores, args.threshold)
                line += f"; max_kept={stop} {t_early:.3f} s, {t_loop / t_early:.0f}x"
            print(line, flush=True)


if __name__ == "__main__":
    main()
