"""Parameters and multiply-adds per stage, counted as the paper counts FLOPs (conv and fc layers, Table 1)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from . import ResNet, create_model


@dataclass
class StageCost:
    """One row of a summary: a stage's parameters, multiply-adds and output shape (C, H, W)."""

    name: str
    params: int = 0
    macs: int = 0
    output: tuple[int, ...] = ()


@dataclass
class Complexity:
    """A whole network's cost at one input size."""

    model: str
    input_size: int
    stages: list[StageCost] = field(default_factory=list)

    @property
    def params(self) -> int:
        return sum(s.params for s in self.stages)

    @property
    def macs(self) -> int:
        return sum(s.macs for s in self.stages)

    def to_dict(self) -> dict:
        """JSON-friendly form with integer `params` and `macs`."""
        return {
            "model": self.model,
            "input_size": self.input_size,
            "params": self.params,
            "macs": self.macs,
            "stages": [vars(s) | {"output": list(s.output)} for s in self.stages],
        }


def _stage_modules(model: ResNet) -> list[tuple[str, list[nn.Module]]]:
    stem = [model.conv1, model.bn1]
    stages: list[tuple[str, list[nn.Module]]] = [(f"layer{i + 1}", [stage]) for i, stage in enumerate(model.stages)]
    return [("stem", stem), *stages, ("head", [model.fc])]


def _macs_hook(costs: StageCost):
    def hook(module: nn.Module, inputs, output: torch.Tensor) -> None:
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            costs.macs += output[0].numel() * (module.in_channels // module.groups) * kh * kw
        else:
            assert isinstance(module, nn.Linear)  # `measure` hooks Conv2d and Linear layers only
            costs.macs += module.in_features * module.out_features

    return hook


def measure(model: ResNet, input_size: int | None = None, name: str = "") -> Complexity:
    """Count parameters and multiply-adds of `model` for one image of `input_size` pixels square."""
    size = input_size or model.config.default_input_size
    result = Complexity(name, size)
    handles = []
    for stage_name, modules in _stage_modules(model):
        cost = StageCost(stage_name)
        result.stages.append(cost)
        for top in modules:
            cost.params += sum(p.numel() for p in top.parameters())
            for m in top.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    handles.append(m.register_forward_hook(_macs_hook(cost)))
        last = modules[-1]
        handles.append(
            last.register_forward_hook(lambda m, i, out, cost=cost: setattr(cost, "output", tuple(out.shape[1:])))
        )
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, size, size, device=device))
    finally:
        for h in handles:
            h.remove()
    return result


def model_complexity(name: str, input_size: int | None = None, **options) -> Complexity:
    """Build `name` on the meta device (no memory, no compute) and measure it."""
    with torch.device("meta"):
        model = create_model(name, **options)
    return measure(model, input_size, name)
