import pickle

import pytest
import torch

from resnets.models import BasicBlock, Bottleneck, ZeroPadShortcut, create_model
from resnets.models.blocks import GlobalAvgPool


def test_option_a_pads_zero_channels_and_takes_every_second_pixel():
    x = torch.randn(2, 16, 8, 8)
    out = ZeroPadShortcut(16, 32, stride=2)(x)
    assert out.shape == (2, 32, 4, 4)
    assert torch.equal(out[:, :16], x[:, :, ::2, ::2])
    assert torch.count_nonzero(out[:, 16:]) == 0
    assert list(ZeroPadShortcut(16, 32, 2).parameters()) == []


@pytest.mark.parametrize("size", [(7, 7), (5, 9), (1, 1)])
def test_global_pool_equals_adaptive_average_pool(size):
    x = torch.randn(2, 4, *size)
    torch.testing.assert_close(GlobalAvgPool()(x), torch.nn.AdaptiveAvgPool2d(1)(x))


@pytest.mark.parametrize("shortcut, projections", [("A", 0), ("B", 2), ("C", 9)])
def test_shortcut_options_place_projections_as_sec_3_3_says(shortcut, projections):
    model = create_model("resnet20", shortcut=shortcut)
    downsamples = [b.downsample for stage in model.stages for b in stage]
    assert sum(isinstance(d, torch.nn.Sequential) for d in downsamples) == projections
    if shortcut == "A":
        assert sum(isinstance(d, ZeroPadShortcut) for d in downsamples) == 2


def test_residual_block_adds_shortcut_before_relu_and_plain_block_does_not():
    torch.manual_seed(0)
    block = BasicBlock(8, 8).eval()
    plain = BasicBlock(8, 8, residual=False).eval()
    plain.load_state_dict(block.state_dict())
    x = torch.randn(1, 8, 6, 6)
    f = block.residual_branch(x)
    assert torch.allclose(block(x), torch.relu(f + x))
    assert torch.allclose(plain(x), torch.relu(f))


@pytest.mark.parametrize("stride_on, strides", [("1x1", (2, 1)), ("3x3", (1, 2))])
def test_bottleneck_stride_placement(stride_on, strides):
    block = Bottleneck(64, 32, stride=2, stride_on=stride_on)
    assert (block.conv1.stride[0], block.conv2.stride[0]) == strides
    assert block(torch.randn(1, 64, 8, 8)).shape == (1, 128, 4, 4)


def test_option_a_model_pickles_and_exports():
    model = create_model("resnet20").eval()
    clone = pickle.loads(pickle.dumps(model))
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(clone(x), model(x))
    exported = torch.export.export(model, (x,))
    assert torch.allclose(exported.module()(x), model(x), atol=1e-5)
