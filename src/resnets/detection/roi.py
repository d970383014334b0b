"""RoI pooling (Fast R-CNN, the paper's operator) and RoIAlign (Mask R-CNN) in pure PyTorch, torchvision semantics.

Both gather the samples of a chunk of RoIs from the flattened feature map with index_select, so autograd gives
the gradient (index_add into the map) and memory is bounded by CHUNK_ELEMENTS, whatever the number of RoIs.
As in torchvision, no gradient flows into the box coordinates.
"""

from __future__ import annotations

import math

import torch

CHUNK_ELEMENTS = 1 << 24  # gathered values per chunk of RoIs: 64 MB in float32


def _check(input: torch.Tensor, boxes: torch.Tensor, output_size: int | tuple[int, int]) -> tuple[int, int]:
    if input.dim() != 4:
        raise ValueError(f"input must be (N, C, H, W); got {tuple(input.shape)}")
    if boxes.dim() != 2 or boxes.shape[1] != 5:
        raise ValueError(f"boxes must be (K, 5) rows of (batch index, x1, y1, x2, y2); got {tuple(boxes.shape)}")
    size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    return int(size[0]), int(size[1])


def _chunks(k: int, per_roi: int) -> list[tuple[int, int]]:
    step = max(1, CHUNK_ELEMENTS // max(per_roi, 1))
    return [(s, min(s + step, k)) for s in range(0, k, step)]


def roi_align(
    input: torch.Tensor,
    boxes: torch.Tensor,
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> torch.Tensor:
    """(K, C, PH, PW): each bin the mean of bilinear samples on a regular grid (sampling_ratio per side, or
    ceil(bin size) when <= 0); `aligned` shifts the box by -0.5 pixel so that pixel centres line up."""
    ph, pw = _check(input, boxes, output_size)
    n, c, h, w = input.shape
    k = len(boxes)
    if k == 0:
        return input.new_zeros((0, c, ph, pw))
    rois = boxes.detach().to(torch.float64)
    offset = 0.5 if aligned else 0.0
    x1, y1 = rois[:, 1] * spatial_scale - offset, rois[:, 2] * spatial_scale - offset
    roi_w, roi_h = rois[:, 3] * spatial_scale - offset - x1, rois[:, 4] * spatial_scale - offset - y1
    if not aligned:  # the legacy behaviour: a box is at least one pixel
        roi_w, roi_h = roi_w.clamp(min=1), roi_h.clamp(min=1)
    bin_w, bin_h = roi_w / pw, roi_h / ph
    if sampling_ratio > 0:
        grid_h = torch.full((k,), sampling_ratio, dtype=torch.long)
        grid_w = grid_h.clone()
    else:
        grid_h, grid_w = torch.ceil(roi_h / ph).long().cpu(), torch.ceil(roi_w / pw).long().cpu()
    flat = input.permute(0, 2, 3, 1).reshape(n * h * w, c)
    out = []
    for start, end in _chunks(k, c * ph * pw * 4 * int(grid_h.max().clamp(min=1) * grid_w.max().clamp(min=1))):
        gh, gw = grid_h[start:end].to(input.device), grid_w[start:end].to(input.device)
        mh, mw = max(int(gh.max()), 1), max(int(gw.max()), 1)
        # Sample coordinates (k, bins, samples) along each axis; samples beyond a RoI's own grid get weight 0.
        ys, y_used = _samples(y1[start:end], bin_h[start:end], gh, ph, mh)
        xs, x_used = _samples(x1[start:end], bin_w[start:end], gw, pw, mw)
        (y0, y_1, wy0, wy1) = _linear(ys, h, y_used)
        (x0, x_1, wx0, wx1) = _linear(xs, w, x_used)
        base = rois[start:end, 0].long().to(input.device)[:, None, None, None, None] * (h * w)
        total: torch.Tensor | int = 0
        for yi, wy in ((y0, wy0), (y_1, wy1)):
            for xi, wx in ((x0, wx0), (x_1, wx1)):
                index = base + yi[:, :, :, None, None] * w + xi[:, None, None, :, :]  # (k, PH, mh, PW, mw)
                weight = (wy[:, :, :, None, None] * wx[:, None, None, :, :]).to(input.dtype)
                values = flat.index_select(0, index.reshape(-1)).view(*index.shape, c)
                total = total + values * weight[..., None]
        count = (gh * gw).clamp(min=1).to(input.dtype)[:, None, None, None]
        assert isinstance(total, torch.Tensor)  # the four corners above were added
        pooled = total.sum((2, 4)) / count  # (k, PH, PW, C)
        out.append(pooled.permute(0, 3, 1, 2))
    return torch.cat(out).contiguous()


def _samples(
    start: torch.Tensor, bin_size: torch.Tensor, grid: torch.Tensor, bins: int, most: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample positions (k, bins, most) at the centres of `grid` equal steps per bin, and which are used."""
    i = torch.arange(most, device=grid.device, dtype=torch.float64)
    p = torch.arange(bins, device=grid.device, dtype=torch.float64)
    g = grid.clamp(min=1).to(torch.float64)[:, None, None]
    pos = start.to(grid.device)[:, None, None] + bin_size.to(grid.device)[:, None, None] * (
        p[None, :, None] + (i[None, None, :] + 0.5) / g
    )
    used = (i[None, None, :] < grid[:, None, None]).expand_as(pos)
    return pos, used


def _linear(pos: torch.Tensor, size: int, used: torch.Tensor):
    """Bilinear interpolation along one axis, as torchvision's kernel: lower and upper index and their weights.

    A sample more than one pixel outside the map contributes 0; one within that pixel is clamped onto the edge.
    """
    valid = used & (pos >= -1.0) & (pos <= size)
    pos = pos.clamp(min=0)
    low = pos.floor().long()
    at_edge = low >= size - 1
    low = torch.where(at_edge, torch.full_like(low, size - 1), low)
    high = torch.where(at_edge, low, low + 1)
    pos = torch.where(at_edge, low.to(pos.dtype), pos)
    frac = pos - low
    zero = torch.zeros_like(frac)
    return low, high, torch.where(valid, 1 - frac, zero), torch.where(valid, frac, zero)


def roi_pool(
    input: torch.Tensor, boxes: torch.Tensor, output_size: int | tuple[int, int], spatial_scale: float = 1.0
) -> torch.Tensor:
    """(K, C, PH, PW): each bin the max over the feature cells it covers (Fast R-CNN's RoI pooling); 0 if none.

    Box corners are rounded to cells; bin p spans [floor(p * size / P), ceil((p + 1) * size / P)) cells of a RoI.
    """
    ph, pw = _check(input, boxes, output_size)
    n, c, h, w = input.shape
    k = len(boxes)
    if k == 0:
        return input.new_zeros((0, c, ph, pw))
    rois = boxes.detach().to(torch.float64)
    # torchvision rounds half away from zero (C's round), not to even as torch.round does.
    corners = torch.sign(rois[:, 1:] * spatial_scale) * torch.floor((rois[:, 1:] * spatial_scale).abs() + 0.5)
    x1, y1, x2, y2 = corners.long().unbind(1)
    roi_w, roi_h = (x2 - x1 + 1).clamp(min=1), (y2 - y1 + 1).clamp(min=1)
    # The largest bin any RoI has, in cells: bounds the gather below.
    most_h = int(math.ceil(float((roi_h.to(torch.float64) / ph).max()))) + 1
    most_w = int(math.ceil(float((roi_w.to(torch.float64) / pw).max()))) + 1
    ys, y_used = _cells(y1, roi_h, ph, h, most_h)
    xs, x_used = _cells(x1, roi_w, pw, w, most_w)
    flat = input.permute(0, 2, 3, 1).reshape(n * h * w, c)
    batch = rois[:, 0].long()
    out = []
    for start, end in _chunks(k, c * ph * pw * most_h * most_w):
        sl = slice(start, end)
        index = batch[sl, None, None, None, None] * (h * w) + ys[sl, :, :, None, None] * w + xs[sl, None, None]
        used = y_used[sl, :, :, None, None] & x_used[sl, None, None]  # (k, PH, mh, PW, mw)
        values = flat.index_select(0, index.reshape(-1).to(input.device)).view(*index.shape, c)
        values = values.masked_fill(~used.to(input.device)[..., None], float("-inf"))
        kk = end - start
        values = values.permute(0, 1, 3, 5, 2, 4).reshape(kk, ph, pw, c, most_h * most_w)
        best = values.max(-1).values
        empty = ~used.any(4).any(2).to(input.device)  # (k, PH, PW)
        best = torch.where(empty[..., None], torch.zeros_like(best), best)
        out.append(best.permute(0, 3, 1, 2))
    return torch.cat(out).contiguous()


def _cells(start: torch.Tensor, size: torch.Tensor, bins: int, limit: int, most: int):
    """Cell indices (k, bins, most) of each bin along one axis, clipped to the map, and which are in the bin."""
    p = torch.arange(bins, dtype=torch.float64, device=start.device)
    bin_size = size.to(torch.float64)[:, None] / bins
    lo = (torch.floor(p[None] * bin_size).long() + start[:, None]).clamp(0, limit)
    hi = (torch.ceil((p[None] + 1) * bin_size).long() + start[:, None]).clamp(0, limit)
    cells = lo[:, :, None] + torch.arange(most, device=start.device)[None, None]
    used = cells < hi[:, :, None]
    return cells.clamp(max=max(limit - 1, 0)), used
