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
