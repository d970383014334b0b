"""map_50_voc07 against an independent VOC07 implementation on real BCCD boxes; COCO metrics via pycocotools."""

from __future__ import annotations

import numpy as np
import pytest

from resnets.core.errors import UserError
from resnets.detection.data import load_detection_split
from resnets.detection.evaluation import check_detections, evaluate_detections, map_50_voc07

from .conftest import SLICE, extract_voc


def reference_voc07(detections, dataset) -> float:
    """VOC07 mAP written from the devkit's description, loop by loop: greedy matching per class in score order."""
    aps = []
    for k, name in enumerate(dataset.classes):
        truth = {}
        for a in dataset.annotations:
            truth[str(a.image_id)] = [
                [list(map(float, box)), bool(hard), False]
                for box, label, hard in zip(a.boxes, a.labels, a.difficult)
                if label == k
            ]
        npos = sum(1 for objs in truth.values() for _, hard, _ in objs if not hard)
        if npos == 0:
            continue
        ranked = sorted([d for d in detections if d["label"] == name], key=lambda d: d["score"], reverse=True)
        hits = []  # True: true positive, False: false positive (difficult matches are left out)
        for d in ranked:
            x1, y1, x2, y2 = d["box"]
            best, best_obj = 0.0, None
            for obj in truth[str(d["image"])]:
                g = obj[0]
                w = min(x2, g[2]) - max(x1, g[0]) + 1
                h = min(y2, g[3]) - max(y1, g[1]) + 1
                if w <= 0 or h <= 0:
                    continue
                union = (x2 - x1 + 1) * (y2 - y1 + 1) + (g[2] - g[0] + 1) * (g[3] - g[1] + 1) - w * h
                if w * h / union > best:
                    best, best_obj = w * h / union, obj
            if best > 0.5 and best_obj[1]:
                continue
            if best > 0.5 and not best_obj[2]:
                best_obj[2] = True
                hits.append(True)
            else:
                hits.append(False)
        points = []
        tp = 0
        for i, hit in enumerate(hits):
            tp += hit
            points.append((tp / npos, tp / (i + 1)))
        ap = 0.0
        for t in [i / 10 for i in range(11)]:
            ap += max([p for r, p in points if r >= t - 1e-12], default=0.0) / 11
        aps.append(ap)
    return sum(aps) / len(aps)


def perturbed(dataset, seed: int = 0) -> list[dict]:
    """Every ground-truth box jittered by a few pixels, some dropped, some duplicated, plus random false boxes."""
    rng = np.random.default_rng(seed)
    out = []
    for a in dataset.annotations:
        for box, label in zip(a.boxes, a.labels):
            if rng.random() < 0.15:
                continue
            for _ in range(1 + (rng.random() < 0.2)):
                jitter = box + rng.normal(0, 0.12 * (box[2] - box[0] + box[3] - box[1]) / 2, 4)
                out.append(
                    {
                        "image": a.image_id,
                        "label": dataset.classes[label],
                        "box": jitter.tolist(),
                        "score": float(rng.random()),
                    }
                )
        for _ in range(3):
            x, y = rng.uniform(0, a.width - 40), rng.uniform(0, a.height - 40)
            label = dataset.classes[rng.integers(len(dataset.classes))]
            out.append(
                {"image": a.image_id, "label": label, "box": [x, y, x + 40, y + 30], "score": float(rng.random())}
            )
    return out


def test_cross_check_on_the_shipped_bccd_slice():
    data = load_detection_split(SLICE, "val")
    for seed in range(5):
        detections = perturbed(data, seed)
        ours, _ = map_50_voc07(detections, data)
        assert 0.05 < ours < 0.99  # neither trivial nor perfect: the matching decides
        assert ours == pytest.approx(reference_voc07(detections, data), abs=1e-12)


def test_cross_check_on_bccd_val(tmp_path):
    data = load_detection_split(extract_voc("voc-bccd.tar.gz", tmp_path), "val", skip_bad_images=True)
    assert len(data.annotations) == 87
    detections = perturbed(data, 1)
    ours, per_class = map_50_voc07(detections, data)
    assert ours == pytest.approx(reference_voc07(detections, data), abs=1e-12)
    assert set(per_class) == {"Platelets", "RBC", "WBC"}


def test_known_values_difficult_and_coco(voc):
    data = load_detection_split(voc, "val")
    perfect = [
        {"image": a.image_id, "label": data.classes[k], "box": b.tolist(), "score": 1.0}
        for a in data.annotations
        for b, k in zip(a.boxes, a.labels)
    ]
    result = evaluate_detections(perfect, data)
    assert (result["map_50_voc07"], result["map_50"], result["map"]) == (100.0, 100.0, 100.0)
    assert result["images"] == 4 and set(result["per_class"]) == {"cat", "dog"}
    # One cat missed of three non-difficult cats, and a false positive ranked first: recall 2/3 at precision 2/3.
    cats = [d for d in perfect if d["label"] == "cat" and d["image"] != "a"]  # b's difficult cat + d's cat
    false = {"image": "c", "label": "cat", "box": [1, 1, 9, 9], "score": 2.0}
    _, per_class = map_50_voc07([false, *cats], data)
    # ranks: FP (p 0), d's cat TP (r 1/2, p 1/2); b's cat is difficult: ignored. npos = 2 (a, d).
    assert per_class["cat"] == pytest.approx((6 * 0.5) / 11)


def test_check_detections_names_the_problem(voc):
    data = load_detection_split(voc, "val")
    with pytest.raises(UserError, match="entry 0 names image 'zz'"):
        check_detections([{"image": "zz", "label": "cat", "box": [0, 0, 1, 1], "score": 1}], data, "d.json")
    with pytest.raises(UserError, match="label 'cow'"):
        check_detections([{"image": "a", "label": "cow", "box": [0, 0, 1, 1], "score": 1}], data, "d.json")
    with pytest.raises(UserError, match="entry 0 is not"):
        check_detections([{"image": "a"}], data, "d.json")
