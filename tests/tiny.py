"""The tiny training run that in-process tests share."""

from resnets.training.config import TrainConfig


def tiny_config(data, out, **overrides) -> TrainConfig:
    """ResNet-20 on 400 real CIFAR images: 300 train / 100 val, batch 32 (9 iterations an epoch)."""
    values = dict(
        model="resnet20",
        data=str(data),
        out=str(out),
        batch_size=32,
        iters=12,
        eval_every=3,
        log_every=3,
        val_split=100,
        deterministic=True,
        precision="fp32",
        eval_batch_size=50,
    )
    return TrainConfig(**{**values, **overrides})


def tiny_imagenet_config(data, out, **overrides) -> TrainConfig:
    """The ImageNet pipeline (Sec. 3.4) shrunk: shorter side in [36, 44], 32x32 crops, ResNet-20, batch 4, on
    image folders with ROOT/val; 6 iterations, 2 worker-less validations."""
    shrunk = dict(augmentation="imagenet", scale_range=(36, 44), crop_size=32, test_resize=36, workers=0)
    schedule = dict(val_split=0, batch_size=4, iters=6, eval_batch_size=8)
    return tiny_config(data, out, **{**shrunk, **schedule, **overrides})
