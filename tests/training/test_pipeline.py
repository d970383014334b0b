"""The data pipeline a run gets from its `augmentation`: CIFAR's in memory, ImageNet's decoded on demand."""

import torch

from resnets.data import ImageFiles, ImageSet
from resnets.data.sampler import EpochSampler
from resnets.training.batches import CifarBatches, ImageNetBatches
from resnets.training.pipeline import CifarPipeline, ImageNetPipeline, pipeline_for

from ..tiny import tiny_config, tiny_imagenet_config

CPU = torch.device("cpu")


def test_cifar_runs_get_the_in_memory_pipeline(cifar_png, tmp_path):
    pipeline = pipeline_for(tiny_config(cifar_png, tmp_path / "run", workers=3))
    assert isinstance(pipeline, CifarPipeline)
    assert (pipeline.held_out, pipeline.validation_view, pipeline.validation_workers) == ("test", "full", 0)
    train = pipeline.load("train", progress=False)
    assert isinstance(train, ImageSet) and pipeline.has_held_out(cifar_png)
    mean = pipeline.mean(train)
    assert mean.shape == (3, 32, 32) and torch.allclose(mean, train.images.float().mean(0) / 255, atol=1e-6)
    batches = pipeline.batches(train, EpochSampler(len(train), 8, seed=0), mean, None, CPU)
    assert isinstance(batches, CifarBatches) and batches.batch(0)[0].shape == (8, 3, 32, 32)


def test_imagenet_runs_get_the_decoding_pipeline(imagenette_small, tmp_path):
    pipeline = pipeline_for(tiny_imagenet_config(imagenette_small, tmp_path / "run", workers=3))
    assert isinstance(pipeline, ImageNetPipeline)
    assert (pipeline.held_out, pipeline.validation_view, pipeline.validation_workers) == ("val", "center", 3)
    train = pipeline.load("train", progress=False)
    assert isinstance(train, ImageFiles) and pipeline.has_held_out(imagenette_small)
    assert not pipeline.has_held_out(tmp_path)
    pipeline = pipeline_for(tiny_imagenet_config(imagenette_small, tmp_path / "run"))  # workers=0: no processes
    batches = pipeline.batches(train, EpochSampler(len(train), 4, seed=0), torch.zeros(3, 32, 32), None, CPU)
    assert isinstance(batches, ImageNetBatches) and batches.batch(0)[0].shape == (4, 3, 32, 32)
