"""The ImageNet pipeline of the training loop (Sec. 3.4) on real Imagenette photos, shrunk to 32x32 crops."""

import csv
import json
import shutil

import pytest
import torch

from resnets.core.checkpoints import load_checkpoint
from resnets.core.errors import UserError
from resnets.models import create_model
from resnets.training.config import resolve_config
from resnets.training.loop import Trainer, train
from resnets.weights.files import IMAGENET_MEAN

from ..tiny import tiny_imagenet_config


def test_trains_on_photo_folders_and_validates_on_the_val_folder(imagenette_small, tmp_path):
    last = train(tiny_imagenet_config(imagenette_small, tmp_path / "run"))
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert [int(r["iteration"]) for r in rows] == [3, 6]
    assert all(0 <= float(r["val_error"]) <= 100 for r in rows) and last["iteration"] == 6
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    assert state["pixel_mean"].shape == (3, 32, 32) and state["pixel_std"] is None
    assert state["classes"] == sorted(p.name for p in (imagenette_small / "train").iterdir())


def test_batches_are_scale_augmented_crops_normalised_by_the_centre_view_mean(imagenette_small, tmp_path):
    trainer = Trainer(tiny_imagenet_config(imagenette_small, tmp_path / "run", lighting_std=0.0))
    x, y = trainer.batch(0)
    assert x.shape == (4, 3, 32, 32) and y.shape == (4,)
    raw = (x + trainer.data.mean) * 255  # undo the mean: the crops' pixels again
    assert raw.min() > -1e-3 and raw.max() < 255 + 1e-3
    assert torch.equal(trainer.batch(0)[0], x)  # a retried step sees the same batch
    assert not torch.equal(trainer.batch(1)[0], x)


def test_colour_noise_shifts_each_image_by_one_rgb_vector(imagenette_small, tmp_path):
    plain, noisy = (
        Trainer(tiny_imagenet_config(imagenette_small, tmp_path / f"run{std}", lighting_std=std)).batch(0)[0]
        for std in (0.0, 0.1)
    )
    shift = noisy - plain
    assert shift.abs().amax() > 1e-4
    torch.testing.assert_close(shift, shift[:, :, :1, :1].expand_as(shift), atol=1e-5, rtol=0)


def test_epochs_set_the_length_and_validate_once_an_epoch(imagenette_small, tmp_path):
    config = tiny_imagenet_config(imagenette_small, tmp_path / "run", epochs=2.0, eval_every=0)
    given = config.to_dict()
    train(config)
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert [int(r["iteration"]) for r in rows] == [3, 6]  # 12 images at batch 4: 3 iterations an epoch
    assert config.to_dict() == given  # the trainer derives the length; the resolved config stays as it was
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (saved["epochs"], saved["iters"]) == (2.0, 6)  # config.json records the iterations trained for
    # Resuming, or an experiment's fresh resolution (the recipe's iters) against it: the derived length stands.
    assert resolve_config({}, saved).iters == resolve_config(given, saved).iters == 6


def test_plateau_schedule_divides_the_lr_when_validation_stalls(imagenette_small, tmp_path):
    config = tiny_imagenet_config(
        imagenette_small, tmp_path / "run", iters=9, lr_schedule="plateau", plateau_patience=1, plateau_min_delta=100.0
    )
    train(config)
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    # no validation can improve by 100 points: each one after the first divides the lr for what follows
    assert [float(r["lr"]) for r in rows] == pytest.approx([0.1, 0.1, 0.01])
    assert load_checkpoint(tmp_path / "run" / "last.pt")["plateau"]["divisions"] == 2


def test_plateau_needs_a_validation_set(imagenette_small, tmp_path):
    shutil.copytree(imagenette_small / "train", tmp_path / "no-val" / "train")
    with pytest.raises(UserError, match="--lr-schedule plateau.*no validation set"):
        Trainer(tiny_imagenet_config(tmp_path / "no-val", tmp_path / "run", lr_schedule="plateau"))


def test_fine_tuning_loads_weights_and_starts_a_fresh_classifier(imagenette_small, tmp_path):
    source = create_model("resnet20", num_classes=7)  # another class count: its fc cannot be used
    torch.save(source.state_dict(), tmp_path / "pretrained.pth")
    trainer = Trainer(
        tiny_imagenet_config(imagenette_small, tmp_path / "run", weights=str(tmp_path / "pretrained.pth"))
    )
    assert torch.equal(trainer.model.conv1.weight, source.conv1.weight)
    assert torch.equal(trainer.model.layer3[0].bn2.running_var, source.layer3[0].bn2.running_var)
    assert trainer.model.fc.weight.shape == (3, 64)
    # a torchvision-format file brings torchvision's normalisation, which the run then uses and stores
    assert trainer.data.mean.flatten().tolist() == pytest.approx(IMAGENET_MEAN)
    assert trainer.data.std is not None


def test_weights_that_do_not_fit_are_a_clear_error(imagenette_small, tmp_path):
    torch.save(create_model("resnet32").state_dict(), tmp_path / "other.pth")
    with pytest.raises(UserError, match="does not fit the model.*unexpected keys"):
        Trainer(tiny_imagenet_config(imagenette_small, tmp_path / "run", weights=str(tmp_path / "other.pth")))


def test_cifar_fine_tuning_divides_training_batches_by_the_weights_std(cifar_small, tmp_path):
    from ..tiny import tiny_config

    torch.save(create_model("resnet20").state_dict(), tmp_path / "w.pth")  # torchvision format: mean/std inputs
    trainer = Trainer(tiny_config(cifar_small, tmp_path / "run", weights=str(tmp_path / "w.pth")))
    x, _ = trainer.batch(0)
    mean, std = trainer.data.mean, trainer.data.std
    pixels = x * std + mean  # undoing mean and std gives the crops' pixels in [0, 1] back ...
    assert pixels.min() > -1e-5 and pixels.max() < 1 + 1e-5
    assert (x + mean).max() > 1.5  # ... which they are not when only the mean is undone
