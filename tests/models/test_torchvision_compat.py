"""A torchvision-format state dict loads key for key and computes the same function.

torchvision is not needed: the test writes the state dict from the key/shape rules of
torchvision's resnet.py and evaluates it with a functional forward of its own ("ResNet v1.5":
stride on the 3x3, projection shortcuts where the shape changes).
"""

import sys

import pytest
import torch
import torch.nn.functional as F

from resnets.models import create_model

# name -> (bottleneck?, blocks per stage, groups, width_per_group)
SPECS = {
    "resnet18": (False, (2, 2, 2, 2), 1, 64),
    "resnet50": (True, (3, 4, 6, 3), 1, 64),
    "resnext50_32x4d": (True, (3, 4, 6, 3), 32, 4),
    "wide_resnet50_2": (True, (3, 4, 6, 3), 1, 128),
}


def torchvision_state_dict(bottleneck, layers, groups, width_per_group, num_classes=1000):
    g = torch.Generator().manual_seed(0)
    sd = {}

    def conv(name, cout, cin, k):
        sd[f"{name}.weight"] = torch.randn(cout, cin, k, k, generator=g) * (2 / (cin * k * k)) ** 0.5

    def bn(name, c):
        sd[f"{name}.weight"] = 1 + 0.1 * torch.randn(c, generator=g)
        sd[f"{name}.bias"] = 0.1 * torch.randn(c, generator=g)
        sd[f"{name}.running_mean"] = 0.1 * torch.randn(c, generator=g)
        sd[f"{name}.running_var"] = 1 + 0.1 * torch.rand(c, generator=g)
        sd[f"{name}.num_batches_tracked"] = torch.tensor(100)

    conv("conv1", 64, 3, 7)
    bn("bn1", 64)
    cin, expansion = 64, 4 if bottleneck else 1
    for i, n in enumerate(layers):
        planes = 64 * 2**i
        width = int(planes * width_per_group / 64) * groups
        for j in range(n):
            p = f"layer{i + 1}.{j}"
            if bottleneck:
                conv(f"{p}.conv1", width, cin, 1), bn(f"{p}.bn1", width)
                conv(f"{p}.conv2", width, width // groups, 3), bn(f"{p}.bn2", width)
                conv(f"{p}.conv3", planes * 4, width, 1), bn(f"{p}.bn3", planes * 4)
            else:
                conv(f"{p}.conv1", planes, cin, 3), bn(f"{p}.bn1", planes)
                conv(f"{p}.conv2", planes, planes, 3), bn(f"{p}.bn2", planes)
            if j == 0 and (i > 0 or cin != planes * expansion):
                conv(f"{p}.downsample.0", planes * expansion, cin, 1), bn(f"{p}.downsample.1", planes * expansion)
            cin = planes * expansion
    sd["fc.weight"] = 0.01 * torch.randn(num_classes, cin, generator=g)
    sd["fc.bias"] = torch.zeros(num_classes)
    return sd


def torchvision_forward(sd, x, bottleneck, layers, groups):
    def bn(t, name):
        return F.batch_norm(
            t,
            sd[f"{name}.running_mean"],
            sd[f"{name}.running_var"],
            sd[f"{name}.weight"],
            sd[f"{name}.bias"],
            training=False,
            eps=1e-5,
        )

    x = F.max_pool2d(F.relu(bn(F.conv2d(x, sd["conv1.weight"], stride=2, padding=3), "bn1")), 3, 2, 1)
    for i, n in enumerate(layers):
        for j in range(n):
            p, stride = f"layer{i + 1}.{j}", 2 if i > 0 and j == 0 else 1
            if bottleneck:
                out = F.relu(bn(F.conv2d(x, sd[f"{p}.conv1.weight"]), f"{p}.bn1"))
                out = F.relu(
                    bn(F.conv2d(out, sd[f"{p}.conv2.weight"], stride=stride, padding=1, groups=groups), f"{p}.bn2")
                )
                out = bn(F.conv2d(out, sd[f"{p}.conv3.weight"]), f"{p}.bn3")
            else:
                out = F.relu(bn(F.conv2d(x, sd[f"{p}.conv1.weight"], stride=stride, padding=1), f"{p}.bn1"))
                out = bn(F.conv2d(out, sd[f"{p}.conv2.weight"], padding=1), f"{p}.bn2")
            shortcut = x
            if f"{p}.downsample.0.weight" in sd:
                shortcut = bn(F.conv2d(x, sd[f"{p}.downsample.0.weight"], stride=stride), f"{p}.downsample.1")
            x = F.relu(out + shortcut)
    return F.linear(x.mean((2, 3)), sd["fc.weight"], sd["fc.bias"])


@pytest.mark.parametrize("name", list(SPECS))
def test_torchvision_pth_loads_key_for_key_and_computes_the_same(name, tmp_path):
    bottleneck, layers, groups, wpg = SPECS[name]
    path = tmp_path / f"{name}.pth"
    torch.save(torchvision_state_dict(bottleneck, layers, groups, wpg), path)
    sd = torch.load(path, weights_only=True)

    model = create_model(name, shortcut="B", stride_on="3x3").eval()
    model.load_state_dict(sd, strict=True)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(model(x), torchvision_forward(sd, x, bottleneck, layers, groups), atol=1e-4, rtol=1e-4)


def test_paper_stride_placement_differs_from_torchvision():
    sd = torchvision_state_dict(True, (3, 4, 6, 3), 1, 64)
    model = create_model("resnet50").eval()  # stride on the 1x1, as the paper's models
    model.load_state_dict(sd)  # same shapes ...
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():  # ... but another function
        assert not torch.allclose(model(x), torchvision_forward(sd, x, True, (3, 4, 6, 3), 1), atol=1e-3)


def torchvision_models():
    """torchvision.models, or a skip with the reason: not installed, or installed but unusable (its C ops built for
    another torch: "operator torchvision::nms does not exist", a common state after mismatched upgrades)."""
    try:
        import torchvision.models as tv
    except ImportError:
        pytest.skip("torchvision is not installed")
    except (RuntimeError, OSError, AttributeError) as e:
        pytest.skip(f"torchvision is installed but cannot be imported ({e})")
    return tv


def test_a_broken_torchvision_is_a_skip_with_the_reason(tmp_path, monkeypatch):
    fake = tmp_path / "torchvision"
    fake.mkdir()
    (fake / "__init__.py").write_text('raise RuntimeError("operator torchvision::nms does not exist")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(pytest.skip.Exception, match="cannot be imported .operator torchvision::nms does not exist"):
        torchvision_models()


def test_key_set_matches_torchvision_when_installed():
    tv = torchvision_models()
    for name in SPECS:
        assert create_model(name, stride_on="3x3").state_dict().keys() == getattr(tv, name)().state_dict().keys()
