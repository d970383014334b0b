import pytest

from resnets.models import paper
from resnets.models.complexity import model_complexity

TORCHVISION_PARAMS = {  # PAPER.md's reference counts of torchvision's v1.5 option-B models
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}


@pytest.mark.parametrize("name", list(paper.TABLE1_MACS))
def test_table1_flops_within_5_percent(name):
    assert model_complexity(name).macs == pytest.approx(paper.TABLE1_MACS[name], rel=0.05)


@pytest.mark.parametrize("name", list(paper.TABLE6))
def test_table6_params_within_2_percent(name):
    assert model_complexity(name).params == pytest.approx(paper.TABLE6[name][0], rel=0.02)


@pytest.mark.parametrize("name", list(TORCHVISION_PARAMS))
def test_torchvision_parameter_counts_exact(name):
    assert model_complexity(name, stride_on="3x3").params == TORCHVISION_PARAMS[name]


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110])
def test_plain_equals_resnet_under_option_a(depth):
    plain, res = model_complexity(f"plain{depth}"), model_complexity(f"resnet{depth}")
    assert (plain.params, plain.macs) == (res.params, res.macs)


def test_stride_on_3x3_costs_more():
    assert model_complexity("resnet50", stride_on="3x3").macs / 1e9 == pytest.approx(4.09, abs=0.01)


def test_stages_sum_and_shapes():
    c = model_complexity("resnet20")
    assert [s.name for s in c.stages] == ["stem", "layer1", "layer2", "layer3", "head"]
    assert [s.output for s in c.stages] == [(16, 32, 32), (16, 32, 32), (32, 16, 16), (64, 8, 8), (10,)]
    # stem: 3x3x3x16 per pixel of a 32x32 map; head: 64x10 fc
    assert c.stages[0].macs == 32 * 32 * 16 * 27 and c.stages[-1].macs == 640
    assert c.to_dict()["macs"] == sum(s.macs for s in c.stages)


def test_input_size_scales_macs():
    assert model_complexity("resnet18", 448).macs == pytest.approx(4 * model_complexity("resnet18").macs, rel=0.01)
