"""A model whose outputs are NaN or infinite is evaluated with a warning, not silently scored."""

import math

import torch

from resnets.data import ImageSet
from resnets.evaluation.evaluate import validation_error
from resnets.models import create_model


def score(model, capsys):
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    val = ImageSet(images, torch.arange(6) % 10, [str(i) for i in range(10)])
    capsys.readouterr()
    validation_error(model.eval(), val, torch.zeros(3, 32, 32), device=torch.device("cpu"), batch_size=4)
    return capsys.readouterr().err


def test_non_finite_outputs_warn_once(capsys):
    model = create_model("resnet20")
    assert "warning" not in score(model, capsys)
    with torch.no_grad():
        model.fc.bias[3] = math.inf
    err = score(model, capsys)
    assert err.count("warning: a model's outputs are NaN or infinite on some full crops") == 1  # 2 batches, 1 line
