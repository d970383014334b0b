"""NMS, RoIAlign and RoI pooling against direct references written from torchvision's kernels, loop by loop."""

from __future__ import annotations

import math

import pytest
import torch

from resnets.detection import batched_nms, nms, roi_align, roi_pool


def greedy_nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> list[int]:
    """The textbook loop: take the best remaining box, drop everything overlapping it by more than threshold."""
    x1, y1, x2, y2 = boxes.T.tolist()
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    kept: list[int] = []

    def iou(i: int, j: int) -> float:
        w = max(0.0, min(x2[i], x2[j]) - max(x1[i], x1[j]))
        h = max(0.0, min(y2[i], y2[j]) - max(y1[i], y1[j]))
        union = (x2[i] - x1[i]) * (y2[i] - y1[i]) + (x2[j] - x1[j]) * (y2[j] - y1[j]) - w * h
        return w * h / union if union > 0 else 0.0

    for i in order:
        if all(iou(i, j) <= threshold for j in kept):
            kept.append(i)
    return kept


def random_boxes(n: int, size: float = 100.0, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * size
    wh = torch.rand(n, 2, generator=g) * size / 3
    return torch.cat([xy, xy + wh], 1)


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.7])
def test_nms_matches_greedy_loop(threshold):
    boxes = random_boxes(600, seed=1)  # more than one block of 256, with chains of overlaps
    scores = torch.rand(600, generator=torch.Generator().manual_seed(2))
    assert nms(boxes, scores, threshold).tolist() == greedy_nms(boxes, scores, threshold)


def clustered_boxes(n: int, seed: int) -> torch.Tensor:
    """Boxes jittered around a few objects, as an RPN's proposals: long chains of overlaps, most suppressed."""
    g = torch.Generator().manual_seed(seed)
    centres, sides = torch.rand(8, 2, generator=g) * 200, 20 + torch.rand(8, 2, generator=g) * 60
    k = torch.randint(0, 8, (n,), generator=g)
    xy = centres[k] + torch.randn(n, 2, generator=g) * sides[k] * 0.3
    wh = sides[k] * torch.exp(torch.randn(n, 2, generator=g) * 0.3)
    return torch.cat([xy - wh / 2, xy + wh / 2], 1)


@pytest.mark.parametrize("layout, n", [("random", 1000), ("clustered", 1500)])
def test_nms_max_kept_is_the_head_of_the_full_result(layout, n):
    # Several blocks of 256; random: 732 kept, more than a chunk of 512; clustered: 296 kept, most boxes suppressed.
    # Scores rounded to tenths, so that ties cross block boundaries.
    boxes = random_boxes(n, seed=6) if layout == "random" else clustered_boxes(n, seed=6)
    scores = (torch.rand(n, generator=torch.Generator().manual_seed(7)) * 10).round() / 10
    full = nms(boxes, scores, 0.5)
    assert full.tolist() == greedy_nms(boxes, scores, 0.5)
    for max_kept in (0, 1, 37, 255, 256, 257, len(full) - 1, len(full), len(full) + 100):
        assert torch.equal(nms(boxes, scores, 0.5, max_kept=max_kept), full[:max_kept]), max_kept
    idxs = torch.randint(0, 3, (n,), generator=torch.Generator().manual_seed(8))
    assert torch.equal(batched_nms(boxes, scores, idxs, 0.5, max_kept=40), batched_nms(boxes, scores, idxs, 0.5)[:40])
    with pytest.raises(ValueError, match="max_kept"):
        nms(boxes, scores, 0.5, max_kept=-1)


def test_nms_ties_keep_index_order_and_equal_iou_is_kept():
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 5.0]])
    scores = torch.tensor([0.5, 0.5, 0.5, 0.9])
    # box 3 (IoU 0.5 with 0 and 1) first; at threshold 0.5 an IoU of exactly 0.5 is not "greater", so 0 survives.
    assert nms(boxes, scores, 0.5).tolist() == [3, 0, 2]
    assert nms(boxes, scores, 0.49).tolist() == [3, 2]


def test_nms_chain_is_greedy_not_fast_nms():
    # a overlaps b, b overlaps c, a does not overlap c: greedy keeps a and c; "fast NMS" would drop c via b.
    boxes = torch.tensor([[0, 0, 10, 10], [6, 0, 16, 10], [12, 0, 22, 10.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert nms(boxes, scores, 0.2).tolist() == [0, 2]


def test_nms_empty_and_zero_size():
    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.5).tolist() == []
    assert batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5).tolist() == []
    degenerate = torch.tensor([[5, 5, 5, 5], [5, 5, 5, 5.0]])  # IoU 0 for empty boxes: both kept
    assert nms(degenerate, torch.tensor([0.1, 0.2]), 0.5).tolist() == [1, 0]


def test_batched_nms_is_nms_per_category():
    boxes = random_boxes(300, seed=3)
    scores = torch.rand(300, generator=torch.Generator().manual_seed(4))
    idxs = torch.randint(0, 4, (300,), generator=torch.Generator().manual_seed(5))
    expected = []
    for k in range(4):
        members = torch.nonzero(idxs == k).flatten()
        expected += members[nms(boxes[members], scores[members], 0.5)].tolist()
    expected.sort(key=lambda i: (-float(scores[i]), i))
    assert batched_nms(boxes, scores, idxs, 0.5).tolist() == expected


def reference_roi_align(x, rois, ph, pw, scale, ratio, aligned):
    """torchvision's roi_align_forward_kernel, one bin and one sample at a time."""
    n, c, h, w = x.shape
    out = torch.zeros(len(rois), c, ph, pw, dtype=x.dtype)

    def bilinear(img, y, xx):
        if y < -1.0 or y > h or xx < -1.0 or xx > w:
            return img.new_zeros(c)
        y, xx = max(y, 0.0), max(xx, 0.0)
        y_low, x_low = int(y), int(xx)
        if y_low >= h - 1:
            y_high = y_low = h - 1
            y = float(y_low)
        else:
            y_high = y_low + 1
        if x_low >= w - 1:
            x_high = x_low = w - 1
            xx = float(x_low)
        else:
            x_high = x_low + 1
        ly, lx = y - y_low, xx - x_low
        hy, hx = 1 - ly, 1 - lx
        return (
            hy * hx * img[:, y_low, x_low]
            + hy * lx * img[:, y_low, x_high]
            + ly * hx * img[:, y_high, x_low]
            + ly * lx * img[:, y_high, x_high]
        )

    off = 0.5 if aligned else 0.0
    for k, (b, x1, y1, x2, y2) in enumerate(rois.tolist()):
        sx, sy = x1 * scale - off, y1 * scale - off
        rw, rh = x2 * scale - off - sx, y2 * scale - off - sy
        if not aligned:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        bh, bw = rh / ph, rw / pw
        gh = ratio if ratio > 0 else math.ceil(rh / ph)
        gw = ratio if ratio > 0 else math.ceil(rw / pw)
        count = max(gh * gw, 1)
        for i in range(ph):
            for j in range(pw):
                acc = x.new_zeros(c)
                for iy in range(gh):
                    y = sy + i * bh + (iy + 0.5) * bh / gh
                    for ix in range(gw):
                        xx = sx + j * bw + (ix + 0.5) * bw / gw
                        acc = acc + bilinear(x[int(b)], y, xx)
                out[k, :, i, j] = acc / count
    return out


def reference_roi_pool(x, rois, ph, pw, scale):
    """torchvision's roi_pool_forward_kernel, one bin at a time."""
    n, c, h, w = x.shape
    out = torch.zeros(len(rois), c, ph, pw, dtype=x.dtype)

    def c_round(v):
        return math.floor(v + 0.5) if v >= 0 else -math.floor(-v + 0.5)

    for k, (b, x1, y1, x2, y2) in enumerate(rois.tolist()):
        sw, sh, ew, eh = (c_round(v * scale) for v in (x1, y1, x2, y2))
        rw, rh = max(ew - sw + 1, 1), max(eh - sh + 1, 1)
        bh, bw = rh / ph, rw / pw
        for i in range(ph):
            for j in range(pw):
                hs = min(max(math.floor(i * bh) + sh, 0), h)
                he = min(max(math.ceil((i + 1) * bh) + sh, 0), h)
                ws = min(max(math.floor(j * bw) + sw, 0), w)
                we = min(max(math.ceil((j + 1) * bw) + sw, 0), w)
                if he > hs and we > ws:
                    out[k, :, i, j] = x[int(b), :, hs:he, ws:we].amax((1, 2))
    return out


def sample_rois(n_images: int, h: int, w: int, scale: float, seed: int = 0) -> torch.Tensor:
    """Random RoIs in image pixels, some partly or wholly outside the map, one of zero size."""
    g = torch.Generator().manual_seed(seed)
    k = 12
    xy = (torch.rand(k, 2, generator=g, dtype=torch.float64) * 1.4 - 0.2) * torch.tensor([w, h]) / scale
    wh = torch.rand(k, 2, generator=g, dtype=torch.float64) * torch.tensor([w, h]) / scale
    boxes = torch.cat([xy, xy + wh], 1)
    boxes[0] = torch.tensor([3.0, 3.0, 3.0, 3.0]) / scale  # zero size
    boxes[1] = torch.tensor([w + 5.0, h + 5.0, w + 9.0, h + 9.0]) / scale  # outside the map
    index = torch.randint(0, n_images, (k, 1), generator=g).to(torch.float64)
    return torch.cat([index, boxes], 1)


@pytest.mark.parametrize(("ratio", "aligned"), [(-1, False), (2, False), (0, True), (3, True)])
def test_roi_align_matches_reference(ratio, aligned):
    x = torch.randn(2, 3, 9, 11, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    rois = sample_rois(2, 9, 11, 0.5)
    got = roi_align(x, rois, (4, 3), spatial_scale=0.5, sampling_ratio=ratio, aligned=aligned)
    torch.testing.assert_close(got, reference_roi_align(x, rois, 4, 3, 0.5, ratio, aligned))


def test_roi_pool_matches_reference():
    x = torch.randn(2, 3, 9, 11, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    rois = sample_rois(2, 9, 11, 0.5, seed=1)
    got = roi_pool(x, rois, (4, 3), spatial_scale=0.5)
    torch.testing.assert_close(got, reference_roi_pool(x, rois, 4, 3, 0.5))


@pytest.mark.parametrize("op", ["align", "pool"])
def test_gradients(op):
    x = torch.randn(1, 2, 6, 7, dtype=torch.float64, requires_grad=True, generator=torch.Generator().manual_seed(2))
    rois = torch.tensor([[0, 0.3, 0.7, 9.1, 8.2], [0, 4.0, 1.0, 13.5, 11.0], [0, -3.0, -2.0, 4.0, 3.0]]).double()
    if op == "align":
        fn = lambda t: roi_align(t, rois, 3, spatial_scale=0.5, sampling_ratio=2, aligned=True)  # noqa: E731
        ref = lambda t: reference_roi_align(t, rois, 3, 3, 0.5, 2, True)  # noqa: E731
    else:
        fn = lambda t: roi_pool(t, rois, 3, spatial_scale=0.5)  # noqa: E731
        ref = lambda t: reference_roi_pool(t, rois, 3, 3, 0.5)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    weights = torch.randn(3, 2, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    (ours,) = torch.autograd.grad((fn(x) * weights).sum(), x)
    (theirs,) = torch.autograd.grad((ref(x) * weights).sum(), x)
    torch.testing.assert_close(ours, theirs)


def test_empty_rois_and_chunking(monkeypatch):
    x = torch.randn(1, 4, 8, 8)
    assert roi_align(x, torch.zeros(0, 5), 2).shape == (0, 4, 2, 2)
    assert roi_pool(x, torch.zeros(0, 5), 2).shape == (0, 4, 2, 2)
    rois = sample_rois(1, 8, 8, 1.0, seed=4).float()
    whole_align, whole_pool = roi_align(x, rois, 2, sampling_ratio=2), roi_pool(x, rois, 2)
    monkeypatch.setattr("resnets.detection.roi.CHUNK_ELEMENTS", 64)  # one RoI per chunk
    torch.testing.assert_close(roi_align(x, rois, 2, sampling_ratio=2), whole_align)
    torch.testing.assert_close(roi_pool(x, rois, 2), whole_pool)
