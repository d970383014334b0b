"""Anchors, box coder, matching and sampling, frozen BN, and the assembled Faster R-CNN C4 on tiny inputs."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import resnets
from resnets.core.checkpoints import save_checkpoint
from resnets.core.errors import UserError
from resnets.detection import BoxCoder, FasterRCNNConfig, FrozenBatchNorm2d, faster_rcnn
from resnets.detection.anchors import cell_anchors, grid_anchors
from resnets.detection.frozen_bn import freeze_batchnorm
from resnets.detection.sampling import BACKGROUND, IGNORE, match, sample

# Small inputs and few RoIs: the paper's 300 test RoIs through conv5_x would take seconds per image here.
TINY = dict(
    min_size=96,
    max_size=128,
    anchor_sizes=(32, 64),
    rpn_batch_size=32,
    roi_batch_size=16,
    rpn_pre_nms_train=400,
    rpn_post_nms_train=48,
    rpn_pre_nms_test=200,
    rpn_post_nms_test=24,
)


def test_paper_defaults():
    c = FasterRCNNConfig()
    assert (c.num_anchors, c.anchor_sizes, c.anchor_ratios) == (9, (128.0, 256.0, 512.0), (0.5, 1.0, 2.0))
    assert (c.rpn_batch_size, c.rpn_positive_fraction, c.rpn_fg_iou, c.rpn_bg_iou, c.rpn_nms) == (
        256,
        0.5,
        0.7,
        0.3,
        0.7,
    )
    assert (c.rpn_pre_nms_train, c.rpn_post_nms_train, c.rpn_pre_nms_test, c.rpn_post_nms_test) == (
        12000,
        2000,
        6000,
        300,
    )
    assert (c.roi_batch_size, c.roi_positive_fraction, c.roi_fg_iou, c.roi_bg_iou_low, c.roi_bg_iou_high) == (
        128,
        0.25,
        0.5,
        0.1,
        0.5,
    )
    assert c.box_weights == (10.0, 10.0, 5.0, 5.0)
    assert (c.test_score_threshold, c.test_nms, c.detections_per_image) == (0.05, 0.3, 100)
    assert (c.pooler, c.pooler_resolution, c.frozen_bn, c.min_size, c.max_size) == ("roi_pool", 14, True, 600, 1000)
    with pytest.raises(ValueError, match="pooler"):
        FasterRCNNConfig(pooler="roi_warp")


def test_anchors_have_the_asked_areas_ratios_and_centres():
    cell = cell_anchors((128.0, 256.0), (0.5, 2.0))
    w, h = cell[:, 2] - cell[:, 0], cell[:, 3] - cell[:, 1]
    torch.testing.assert_close(w * h, torch.tensor([128.0, 256.0, 128.0, 256.0]) ** 2)
    torch.testing.assert_close(h / w, torch.tensor([0.5, 0.5, 2.0, 2.0]))
    grid = grid_anchors(cell, 2, 3, 16).view(2, 3, 4, 4)
    centre = (grid[..., :2] + grid[..., 2:]) / 2
    torch.testing.assert_close(centre[1, 2, 0], torch.tensor([2.5 * 16, 1.5 * 16]))  # cell (y=1, x=2)


def test_box_coder_round_trip_and_known_values():
    coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
    ref = torch.tensor([[0.0, 0.0, 10.0, 20.0]])
    box = torch.tensor([[5.0, 0.0, 15.0, 40.0]])
    deltas = coder.encode(box, ref)
    torch.testing.assert_close(deltas, torch.tensor([[10 * 0.5, 10 * 0.5, 0.0, 5 * math.log(2)]]))
    torch.testing.assert_close(coder.decode(deltas, ref), box)
    two = coder.decode(torch.cat([deltas, torch.zeros(1, 4)], 1), ref)  # class-specific: 4 deltas per class
    torch.testing.assert_close(two, torch.cat([box, ref], 1))


def test_match_thresholds_and_best_anchor_per_gt():
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0, 0, 10, 5], [0, 0, 10, 2.5], [50, 50, 60, 60]])  # IoU 1 .5 .25 0
    assert match(gt, boxes, 0.7, 0.3).tolist() == [0, IGNORE, BACKGROUND, BACKGROUND]
    assert match(gt, boxes, 0.5, 0.5, 0.1).tolist() == [0, 0, BACKGROUND, IGNORE]  # Fast R-CNN's [0.1, 0.5)
    # No box reaches 0.7, but the best one (IoU 0.5) still becomes foreground with best_per_gt.
    assert match(gt, boxes[1:], 0.7, 0.3, best_per_gt=True).tolist() == [0, BACKGROUND, BACKGROUND]
    assert match(torch.zeros(0, 4), boxes, 0.7, 0.3).tolist() == [BACKGROUND] * 4


def test_sample_balances_foreground():
    matches = torch.tensor([0] * 300 + [BACKGROUND] * 500 + [IGNORE] * 100)
    fg, bg = sample(matches, 256, 0.5)
    assert (len(fg), len(bg)) == (128, 128) and (matches[fg] >= 0).all() and (matches[bg] == BACKGROUND).all()
    fg, bg = sample(torch.tensor([0] * 10 + [BACKGROUND] * 500), 256, 0.5)
    assert (len(fg), len(bg)) == (10, 246)  # background fills what foreground lacks
    assert len(set(bg.tolist())) == 246


def test_frozen_batchnorm_equals_bn_in_eval_and_trains_nothing():
    bn = nn.BatchNorm2d(4)
    bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2)
    nn.init.uniform_(bn.weight), nn.init.uniform_(bn.bias)
    x = torch.randn(2, 4, 3, 3)
    frozen = freeze_batchnorm(nn.Sequential(bn))[0]
    assert isinstance(frozen, FrozenBatchNorm2d) and not list(frozen.parameters())
    torch.testing.assert_close(frozen(x), bn.eval()(x))
    again = FrozenBatchNorm2d(4)
    again.load_state_dict(bn.state_dict())  # BatchNorm2d's keys, num_batches_tracked included
    torch.testing.assert_close(again(x), bn(x))


def tiny_batch(model, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    images = [
        torch.randint(0, 256, (3, 96, 128), generator=g).float(),
        torch.randint(0, 256, (3, 80, 96), generator=g).float(),
    ]
    targets = [
        {"boxes": torch.tensor([[10.0, 10.0, 60.0, 70.0], [64.0, 20.0, 120.0, 90.0]]), "labels": torch.tensor([0, 2])},
        {"boxes": torch.tensor([[8.0, 4.0, 70.0, 60.0]]), "labels": torch.tensor([1])},
    ]
    batch, sizes = model.normalize(images)
    return batch, sizes, targets


@pytest.mark.parametrize("pooler", ["roi_pool", "roi_align"])
def test_training_step_gives_four_losses_and_gradients_where_trained(pooler):
    torch.manual_seed(0)
    model = faster_rcnn("resnet18", num_classes=3, pooler=pooler, frozen_bn=True, freeze_at=2, **TINY).train()
    batch, sizes, targets = tiny_batch(model)
    assert batch.shape == (2, 3, 96, 128) and sizes == [(96, 128), (80, 96)]
    losses = model(batch, sizes, targets)
    assert set(losses) == {"rpn_cls", "rpn_box", "cls", "box"}
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    sum(losses.values()).backward()
    assert model.trunk.conv1.weight.grad is None and model.trunk.layer1[0].conv1.weight.grad is None  # freeze_at=2
    for p in (model.trunk.layer3[0].conv1.weight, model.rpn.conv.weight, model.roi_heads.res5[0].conv1.weight):
        assert p.grad is not None and p.grad.abs().sum() > 0
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_a_trunk_without_weights_trains_its_bn_and_starts_near_chance():
    settings = {**TINY, "pooler_resolution": 4}  # conv5_x on 2x2: cheap for a ResNet-50
    torch.manual_seed(0)
    scratch = faster_rcnn("resnet50", num_classes=3, **settings).train()
    assert (scratch.config.frozen_bn, scratch.config.freeze_at) == (False, 0)
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in scratch.modules())
    assert all(p.requires_grad for p in scratch.parameters())
    torch.manual_seed(0)
    frozen = faster_rcnn("resnet50", num_classes=3, frozen_bn=True, freeze_at=2, **settings).train()  # as asked
    assert isinstance(frozen.trunk.bn1, FrozenBatchNorm2d) and not frozen.trunk.conv1.weight.requires_grad
    batch, sizes, targets = tiny_batch(scratch)
    with torch.no_grad():
        losses = [model(batch, sizes, targets, [torch.Generator().manual_seed(i) for i in range(2)])["cls"]
                  for model in (scratch, frozen)]  # fmt: skip
    # Frozen BN of untrained statistics is the identity: conv4_x's activations grow block by block, and the first
    # classification loss is far from chance, ln(K + 1) over the 3 classes and background.
    chance = math.log(4)
    assert losses[0] < 1.5 * chance < losses[1]


def test_detect_returns_at_most_100_boxes_in_image_pixels():
    torch.manual_seed(0)
    model = faster_rcnn("resnet18", num_classes=2, test_score_threshold=0.0, detections_per_image=7, **TINY)
    images = [
        torch.randint(0, 256, (3, 200, 300), dtype=torch.uint8),
        torch.randint(0, 256, (3, 50, 40), dtype=torch.uint8),
    ]
    results = model.detect(images)
    for result, image in zip(results, images):
        boxes = result["boxes"]
        assert 0 < len(boxes) <= 7 and result["labels"].max() < 2
        assert (boxes[:, 2] <= image.shape[2] + 1e-3).all() and (boxes[:, 3] <= image.shape[1] + 1e-3).all()
        assert (boxes[:, 2:] > 200 / 96 * 20).any() or image.shape[1] < 100  # rescaled to the original image
        assert (result["scores"][:-1] >= result["scores"][1:]).all()


def test_detect_in_bf16_runs_the_convolutions_in_bf16_and_keeps_boxes_in_fp32():
    torch.manual_seed(0)
    model = faster_rcnn("resnet18", num_classes=2, test_score_threshold=0.0, **TINY)
    image = torch.randint(0, 256, (3, 120, 100), dtype=torch.uint8)
    seen = []
    model.trunk.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    fp32, bf16 = model.detect([image])[0], model.detect([image], precision="bf16")[0]
    assert seen == [torch.float32, torch.bfloat16]
    assert bf16["boxes"].dtype == bf16["scores"].dtype == torch.float32 and len(bf16["boxes"])
    # bf16 keeps about 3 significant digits: the best box moves by a pixel or two of this 120 px image, not more.
    torch.testing.assert_close(bf16["boxes"][0], fp32["boxes"][0], atol=3.0, rtol=0)


def test_bottleneck_and_resnext_backbones_and_cifar_rejected():
    for name in ("resnet50", "resnext50_32x4d"):
        model = faster_rcnn(name, num_classes=2, **TINY)
        assert model.roi_heads.cls_score.in_features == 2048
        assert len(model.detect([torch.zeros(3, 64, 64, dtype=torch.uint8)])) == 1
    with pytest.raises(UserError, match="ImageNet-family"):
        faster_rcnn("resnet20", num_classes=2)


def test_backbone_weights_from_a_file_and_a_run_folder(tmp_path):
    source = resnets.create_model("resnet18", num_classes=10)
    for p in source.parameters():
        nn.init.normal_(p)
    torch.save(source.state_dict(), tmp_path / "r18.pth")
    model = faster_rcnn("resnet18", num_classes=2, backbone_weights=str(tmp_path / "r18.pth"), **TINY)
    torch.testing.assert_close(model.trunk.layer3[1].conv2.weight, source.layer3[1].conv2.weight)
    torch.testing.assert_close(model.roi_heads.res5[0].conv1.weight, source.layer4[0].conv1.weight)
    torch.testing.assert_close(model.trunk.bn1.running_var, source.bn1.running_var)
    assert isinstance(model.trunk.bn1, FrozenBatchNorm2d) and model.config.freeze_at == 2  # the paper's, by default
    assert model.pixel_std.flatten().tolist() == pytest.approx([0.229, 0.224, 0.225])  # torchvision-format file

    run = tmp_path / "run"
    run.mkdir()
    mean = torch.rand(3, 8, 8)
    state = dict(
        iteration=1,
        model_name="resnet18",
        model_config=source.config.to_dict(),
        train_config={},
        classes=[str(i) for i in range(10)],
        pixel_mean=mean,
        pixel_std=None,
        model=source.state_dict(),
    )
    save_checkpoint(run / "last.pt", state)
    model = faster_rcnn("resnet18", num_classes=2, backbone_weights=str(run), **TINY)
    torch.testing.assert_close(model.trunk.layer2[0].conv1.weight, source.layer2[0].conv1.weight)
    torch.testing.assert_close(model.pixel_mean.flatten(), mean.mean((1, 2)))  # the run's own mean, per channel
    with pytest.raises(UserError, match="holds a resnet18"):
        faster_rcnn("resnet34", num_classes=2, backbone_weights=str(run))
