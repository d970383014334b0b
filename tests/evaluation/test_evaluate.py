"""Evaluating models and ensembles under the test views: the scores averaged, the batches formed, the subset fixed."""

import shutil

import pytest
import torch
from torch import nn

from resnets.core.errors import UserError
from resnets.data import ImageSet, normalize, open_split
from resnets.evaluation.evaluate import Member, evaluate_views, evaluation_positions, validation_error
from resnets.evaluation.views import make_view
from resnets.models import ResNet, ResNetConfig, create_model

from .conftest import IMAGENETTE_CLASSES

CPU = torch.device("cpu")


def cifar_like(n: int = 24, classes: int = 10, seed: int = 0) -> ImageSet:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    return ImageSet(images, torch.randint(0, classes, (n,), generator=g), [str(c) for c in range(classes)])


class ImageByImage:
    """An image source without an in-memory tensor: the path ImageFiles takes."""

    def __init__(self, images: ImageSet):
        self.source, self.labels = images, images.labels

    def __len__(self) -> int:
        return len(self.source)

    def image(self, i: int) -> torch.Tensor:
        return self.source.images[i]


class FixedLogits(nn.Module):
    """A 'network' that gives every input the same logits."""

    def __init__(self, logits: list[float]):
        super().__init__()
        self.logits = torch.tensor(logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(len(x), -1)


class Recorder(nn.Module):
    """Wraps a model and records the shape of every batch it sees."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model, self.shapes = model, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape))
        return self.model(x)


def tiny_cifar(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return create_model("cifar_resnet", depth=8, num_classes=10).eval()


def run(members, source, views, **options):
    views = {name: make_view(name, resize=32, crop=28, scales=(24, 32, 40)) for name in views}
    return evaluate_views(members, source, views, device=CPU, **options)


MEAN = torch.full((3, 32, 32), 0.45)


def test_validation_error_is_the_plain_argmax():
    model, images = tiny_cifar(), cifar_like(30)
    model.train()
    result = validation_error(model, images, MEAN, device=CPU, batch_size=8)
    assert model.training  # the trainer's mode is given back
    model.eval()
    with torch.no_grad():
        logits = model(normalize(images.images, MEAN))
    top5 = logits.topk(5, 1).indices == images.labels[:, None]
    assert result["images"] == 30
    assert result["top1_error"] == pytest.approx(100 * (1 - top5[:, 0].float().mean().item()))
    assert result["top5_error"] == pytest.approx(100 * (1 - top5.any(1).float().mean().item()))
    assert set(result) == {"top1_error", "top5_error", "images"}  # no loss: the trainer reads only the errors


def test_an_ensemble_of_a_model_with_itself_is_the_model():
    model, images = tiny_cifar(), cifar_like()
    one = run([Member(model, MEAN)], images, ["full", "10crop"])
    two = run([Member(model, MEAN), Member(model, MEAN)], images, ["full", "10crop"])
    for view in ("full", "10crop"):
        a, b = one.views[view], two.views[view]
        assert (a.top1_error, a.top5_error, a.images) == (b.top1_error, b.top5_error, b.images)
        assert torch.allclose(one.scores[view], two.scores[view], rtol=1e-6, atol=1e-7)


def test_the_ensemble_averages_softmax_scores_not_logits():
    # Averaged logits are (-19.75, 9, -20): class 1. Averaged probabilities are about (0.41, 0.23, 0.37): class 0.
    confident, other = FixedLogits([10.5, 9.0, -50.0]), FixedLogits([-50.0, 9.0, 10.0])
    images = ImageSet(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.zeros(4, dtype=torch.long), ["a", "b", "c"])
    mean = torch.zeros(3, 1, 1)
    both = run([Member(confident, mean), Member(other, mean)], images, ["full"])
    assert both.views["full"].top1_error == 0.0
    p = (torch.tensor([10.5, 9.0, -50.0]).softmax(0) + torch.tensor([-50.0, 9.0, 10.0]).softmax(0)) / 2
    assert torch.allclose(both.scores["full"], p.expand(4, 3), rtol=1e-5)
    alone = run([Member(other, mean)], images, ["full"]).views["full"]
    assert alone.top1_error == 100.0  # so the ensemble's 0% comes from the averaging


def test_in_memory_and_image_by_image_sources_agree_with_any_batching_and_workers():
    model, images = tiny_cifar(), cifar_like(20)
    views = ["full", "center", "10crop", "multiscale"]
    reference = run([Member(model, MEAN)], images, views, batch_size=64)
    for source, options in [(ImageByImage(images), dict(batch_size=7)), (images, dict(batch_size=3, workers=2))]:
        other = run([Member(model, MEAN)], source, views, **options)
        for view in views:
            a, b = reference.views[view], other.views[view]
            assert (a.top1_error, a.top5_error, a.images) == (b.top1_error, b.top5_error, b.images), view
            assert torch.allclose(reference.scores[view], other.scores[view], rtol=1e-5, atol=1e-6), view


def test_batches_hold_one_crop_size_within_the_crop_and_pixel_bounds():
    recorder, images = Recorder(tiny_cifar()), cifar_like(9)
    run([Member(recorder, MEAN)], ImageByImage(images), ["10crop", "multiscale"], batch_size=8, crop_pixels=28 * 28)
    assert all(n <= 8 and n * h * w <= 8 * 28 * 28 for n, _, h, w in recorder.shapes)
    crops = {}
    for n, _, h, w in recorder.shapes:
        crops[(h, w)] = crops.get((h, w), 0) + n
    assert crops == {(28, 28): 9 * 10, (24, 24): 9 * 2, (32, 32): 9 * 2, (40, 40): 9 * 2}
    assert max(n for n, _, h, _ in recorder.shapes if h == 28) == 8  # full batches, not one image's crops


def test_a_limit_is_a_fixed_subset_spread_over_the_split():
    assert evaluation_positions(10, 3).tolist() == [0, 3, 6]
    assert evaluation_positions(4, 10).tolist() == [0, 1, 2, 3]
    assert evaluation_positions(5, None).tolist() == [0, 1, 2, 3, 4]
    model, images = tiny_cifar(), cifar_like(20)
    limited = run([Member(model, MEAN)], images, ["full"], limit=5)
    subset = run([Member(model, MEAN)], images.subset([0, 4, 8, 12, 16]), ["full"])
    assert limited.images == 5 and limited.views["full"].top1_error == subset.views["full"].top1_error
    assert torch.equal(limited.scores["full"], subset.scores["full"])


def test_photo_views_of_a_tiny_imagenet_model_on_real_images(imagenette):
    torch.manual_seed(0)
    model = ResNet(ResNetConfig(depths=(1, 1), widths=(8, 16), num_classes=IMAGENETTE_CLASSES)).eval()
    files = open_split(imagenette, "val")
    mean = torch.rand(3, 224, 224)  # a per-pixel mean map, resized to every input size
    views = {name: make_view(name) for name in ("center", "10crop", "multiscale")}
    result = evaluate_views([Member(model, mean)], files, views, device=CPU, batch_size=16)
    assert result.images == len(files) == 2 * IMAGENETTE_CLASSES
    for name, view in views.items():
        r = result.views[name]
        assert r.images == len(files) and 0 <= r.top5_error <= r.top1_error <= 100 and r.seconds > 0
        # The first image by hand: softmax averaged over the view's crops (and scales).
        image = files.image(0)
        with torch.no_grad():
            probs = torch.cat([model(normalize(stack, mean)).softmax(1) for stack in view(image)]).mean(0)
        alone = evaluate_views([Member(model, mean)], files.subset([0]), {name: view}, device=CPU).scores[name]
        assert torch.allclose(alone[0], probs, rtol=1e-4, atol=1e-6)


def test_a_bad_image_is_a_one_line_user_error_from_a_worker(imagenette, tmp_path):
    root = shutil.copytree(imagenette, tmp_path / "data")
    bad = next((root / "val").rglob("*.JPEG"))
    bad.write_bytes(b"not a jpeg")
    files = open_split(root, "val")
    model = ResNet(ResNetConfig(depths=(1,), widths=(8,), num_classes=IMAGENETTE_CLASSES))
    with pytest.raises(UserError, match=bad.name) as error:
        evaluate_views(
            [Member(model, torch.zeros(3, 1, 1))], files, {"center": make_view("center")}, device=CPU, workers=1
        )
    assert "\n" not in str(error.value) and "Traceback" not in str(error.value)
