import math

import pytest
import torch

from resnets.models import ResNetConfig, create_model, list_models, model_config

PAPER_NAMES = (
    [f"resnet{d}" for d in (18, 34, 50, 101, 152)]
    + [f"plain{d}" for d in (18, 34, 50, 101, 152)]
    + [f"resnet{d}" for d in (20, 32, 44, 56, 110, 1202)]
    + [f"plain{d}" for d in (20, 32, 44, 56, 110)]
    + ["resnext50_32x4d", "resnext101_32x8d", "wide_resnet50_2", "wide_resnet101_2"]
)


def test_registry_lists_every_network_of_the_paper():
    assert set(PAPER_NAMES) <= set(list_models())


@pytest.mark.parametrize("name", PAPER_NAMES)
def test_every_network_builds_with_torchvision_names(name):
    with torch.device("meta"):
        model = create_model(name)
    keys = model.state_dict().keys()
    assert {"conv1.weight", "bn1.weight", "layer1.0.conv1.weight", "layer1.0.bn2.weight", "fc.weight"} <= keys
    out = model(torch.empty(2, 3, model.config.default_input_size, model.config.default_input_size, device="meta"))
    assert out.shape == (2, model.config.num_classes)


def test_cifar_family_is_6n_plus_2_layers_at_any_depth():
    model = create_model("cifar_resnet", depth=8)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) + 1 == 8  # + the fc layer
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="6n\\+2"):
        create_model("cifar_resnet", depth=21)


def test_plain_nets_have_no_shortcuts_and_same_weights_as_option_a_resnets():
    plain, res = create_model("plain20"), create_model("resnet20")
    assert all(b.downsample is None and not b.residual for s in plain.stages for b in s)
    assert plain.state_dict().keys() == res.state_dict().keys()


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(shortcut="D"), "'A', 'B', 'C'"),
        (dict(stride_on="2x2"), "'1x1', '3x3'"),
        (dict(stem="tiny"), "'imagenet', 'cifar'"),
        (dict(num_classes=0), "num_classes"),
        (dict(groups=32), "bottleneck"),
        (dict(replace_stride_with_dilation=[True]), "3 booleans"),
    ],
)
def test_bad_options_name_the_valid_choices(options, message):
    with pytest.raises(ValueError, match=message):
        create_model("resnet18", **options)


def test_unknown_name_lists_models():
    with pytest.raises(ValueError, match="resnet50"):
        create_model("resnet51")


def test_features_only_returns_four_stages_at_strides_4_to_32():
    model = create_model("resnet50", features_only=True).eval()
    outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == model.feature_channels == [256, 512, 1024, 2048]
    assert [64 // o.shape[-1] for o in outs] == model.feature_strides == [4, 8, 16, 32]
    assert "fc.weight" not in model.state_dict()


def test_forward_is_features_then_head():
    model = create_model("resnet18", num_classes=7).eval()
    x = torch.randn(2, 3, 64, 64)
    feats = model.forward_features(x)
    assert feats.shape == (2, 512, 2, 2)
    assert torch.allclose(model.forward_head(feats), model(x))
    assert model.forward_head(feats, pre_logits=True).shape == (2, 512)


def test_dilation_keeps_resolution():
    model = create_model("resnet50", replace_stride_with_dilation=[False, True, True], features_only=True)
    assert model.feature_strides == [4, 8, 8, 8]
    assert model(torch.randn(1, 3, 64, 64))[-1].shape[-1] == 8
    assert model.layer4[1].conv2.dilation == (4, 4)


def test_cifar_stem_for_imagenet_family():
    model = create_model("resnet18", stem="cifar", num_classes=10)
    assert model.conv1.kernel_size == (3, 3) and isinstance(model.maxpool, torch.nn.Identity)
    assert model.forward_features(torch.randn(1, 3, 32, 32)).shape[-1] == 4


def test_he_init_and_zero_init_residual():
    torch.manual_seed(0)
    model = create_model("resnet50", zero_init_residual=True)
    conv = model.layer3[0].conv2
    fan_out = conv.out_channels * 9
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_out), rel=0.05)
    assert all(float(b.bn3.weight.detach().abs().sum()) == 0 for s in model.stages for b in s)
    assert float(model.layer1[0].bn2.weight.detach().sum()) > 0
    with pytest.raises(ValueError, match="residual"):
        create_model("plain20", zero_init_residual=True)


def test_no_dropout_and_bn_after_every_conv():
    model = create_model("resnet34")
    assert not any(isinstance(m, torch.nn.Dropout) for m in model.modules())
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    bns = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert convs == bns


def test_config_round_trips_through_dict():
    config = model_config("resnext50_32x4d", num_classes=10)
    assert ResNetConfig(**config.to_dict()) == config
    assert config.stride_on == "3x3" and model_config("resnet50").stride_on == "1x1"


@pytest.mark.parametrize("name", ["resnet20", "resnet18"])
def test_gradients_stay_channels_last(name):
    # An NCHW gradient anywhere (from option A's subsampling or the head's pooling) makes every backward op after
    # it convert formats, about 10% of a ResNet-20 training step on a CPU.
    model = create_model(name).to(memory_format=torch.channels_last)
    wrong = []

    def check(module_name):
        def hook(module, inputs, output):
            if output.dim() == 4:
                output.register_hook(
                    lambda g: None if g.is_contiguous(memory_format=torch.channels_last) else wrong.append(module_name)
                )

        return hook

    for module_name, module in model.named_modules():
        if module_name:
            module.register_forward_hook(check(module_name))
    x = torch.randn(2, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    model(x).sum().backward()
    assert wrong == []
