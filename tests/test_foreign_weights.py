"""Weights trained by other implementations: pytorch_resnet_cifar10's checkpoints (`module.` keys, a `linear` head,
`best_prec1` beside the state dict, centred option-A padding), torch.compile's `_orig_mod.`, their normalisation
flags, and export and fine-tuning from them. Every file is built here; no third-party weights ship."""

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resnets.cli import main
from resnets.cli.registry import normalization
from resnets.core.errors import UserError
from resnets.data import load_split, pixel_mean
from resnets.models import create_model
from resnets.training.loop import Trainer
from resnets.weights.files import IMAGENET_MEAN, IMAGENET_STD, load_trained, pretrained_model, read_metadata

from .tiny import tiny_config

TINY = {"depth": 8}  # cifar_resnet of depth 8: option A, one block a stage, 16-32-64 channels


class TheirBlock(nn.Module):
    """pytorch_resnet_cifar10's BasicBlock, option A: zero channels padded `planes // 4` on each side."""

    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        pad = planes // 4 if stride != 1 or in_planes != planes else 0
        self.shortcut = lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, pad, pad)) if pad else x

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class TheirResNet(nn.Module):
    """pytorch_resnet_cifar10's ResNet (resnet.py) with `n` blocks a stage (3: ResNet-20): the reference function."""

    def __init__(self, n: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        stage = lambda i, o: nn.Sequential(TheirBlock(i, o, o // i), *(TheirBlock(o, o, 1) for _ in range(n - 1)))  # noqa: E731
        self.layer1, self.layer2, self.layer3 = stage(16, 16), stage(16, 32), stage(32, 64)
        self.linear = nn.Linear(64, 10)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.linear(F.avg_pool2d(out, out.size()[3]).flatten(1))


def trained_like(model: nn.Module) -> nn.Module:
    """`model` in eval mode with random BN statistics and affine parameters, as a trained one has."""
    torch.manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5), m.bias.data.uniform_(-0.5, 0.5)
    return model.eval()


def save_theirs(path, model: nn.Module, prefix: str = "module.", **extra) -> str:
    """`model` saved as their trainer saves: {'state_dict': prefixed keys, 'best_prec1': ...}, no BN step counters."""
    state = {prefix + k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save({"best_prec1": 91.78, "epoch": 200, **extra, "state_dict": state}, path)
    return str(path)


@pytest.fixture(scope="module")
def theirs(tmp_path_factory):
    torch.manual_seed(0)
    return trained_like(TheirResNet())


@pytest.fixture
def images():
    torch.manual_seed(2)
    return torch.rand(4, 3, 32, 32)


def loaded(file: str, **options):
    with pytest.warns(UserWarning, match="assuming ImageNet"):
        return pretrained_model("cifar_resnet", file, **{**TINY, **options})


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "module._orig_mod.", ""])
def test_their_checkpoint_computes_their_function(theirs, images, tmp_path, prefix):
    trained = loaded(save_theirs(tmp_path / "theirs.th", theirs, prefix))
    assert trained.model.fc.weight.shape == (10, 64) and trained.train_config == {"augmentation": "cifar"}
    with torch.no_grad():
        torch.testing.assert_close(trained.model.eval()(images), theirs(images), rtol=0, atol=1e-5)


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "module._orig_mod."])
def test_our_models_saved_by_other_trainers_load_to_the_same_outputs(images, tmp_path, prefix):
    torch.manual_seed(0)
    ours = trained_like(create_model("cifar_resnet", **TINY))  # our option A: the zero channels appended
    file = save_theirs(tmp_path / "ours.pt", ours, prefix, optimizer={"state": {}, "param_groups": []})
    with torch.no_grad():
        assert torch.equal(loaded(file).model.eval()(images), ours(images))
    # a `linear` head on a network without option-A padding (nothing to reorder) is placed on fc as it is
    ours = trained_like(create_model("cifar_resnet", shortcut="B", **TINY))
    state = {k.replace("fc.", "linear."): v for k, v in ours.state_dict().items()}
    torch.save({"model": {prefix + k: v for k, v in state.items()}, "epoch": 3}, tmp_path / "b.pt")
    with torch.no_grad():
        assert torch.equal(loaded(str(tmp_path / "b.pt"), shortcut="B").model.eval()(images), ours(images))


def one_line(error: pytest.ExceptionInfo) -> str:
    assert "\n" not in str(error.value)
    return str(error.value)


def test_a_key_that_fits_several_places_is_one_line_naming_it(theirs, tmp_path):
    extra = {"module.classifier.weight": torch.zeros(10, 64), "module.classifier.bias": torch.zeros(10)}
    state = {"module." + k: v for k, v in theirs.state_dict().items()} | extra
    torch.save({"state_dict": state}, tmp_path / "two_heads.th")
    with pytest.raises(UserError) as error:
        pretrained_model("cifar_resnet", str(tmp_path / "two_heads.th"), **TINY)
    assert "cannot tell where module.linear.weight belongs (linear and classifier fit fc)" in one_line(error)
    state = {"module." + k: v for k, v in theirs.state_dict().items()} | {"linear.bias": torch.zeros(10)}
    torch.save({"state_dict": state}, tmp_path / "twice.th")
    with pytest.raises(UserError, match="module.linear.bias and linear.bias are both linear.bias") as error:
        pretrained_model("cifar_resnet", str(tmp_path / "twice.th"), **TINY)
    one_line(error)


def test_a_module_that_fits_several_of_the_models_is_one_line_naming_it(theirs, tmp_path):
    state = {
        k.replace("layer2.0.bn2.", "layer2.0.norm."): v for k, v in theirs.state_dict().items() if ".bn1." not in k
    }
    torch.save({"state_dict": state}, tmp_path / "renamed.th")
    with pytest.raises(UserError) as error:
        pretrained_model("cifar_resnet", str(tmp_path / "renamed.th"), **TINY)
    assert "cannot tell where layer2.0.norm.weight belongs (layer2.0.bn1 and layer2.0.bn2 fit it alike)" in one_line(
        error
    )


def test_a_wrapper_of_any_name_is_stripped(images, tmp_path):
    torch.manual_seed(0)
    ours = trained_like(create_model("cifar_resnet", **TINY))
    torch.save({"state_dict": {f"model.{k}": v for k, v in ours.state_dict().items()}}, tmp_path / "lightning.ckpt")
    with torch.no_grad():
        assert torch.equal(loaded(str(tmp_path / "lightning.ckpt")).model.eval()(images), ours(images))


def test_keys_that_fit_nowhere_are_named_as_the_file_names_them(theirs, tmp_path):
    state = {"module." + k: v for k, v in theirs.state_dict().items()} | {"module.extra.scale": torch.ones(3)}
    torch.save({"state_dict": state}, tmp_path / "extra.th")
    with pytest.raises(UserError, match=r"1 unexpected keys \(module.extra.scale\)") as error:
        pretrained_model("cifar_resnet", str(tmp_path / "extra.th"), **TINY)
    one_line(error)
    torch.save({"a": theirs.state_dict(), "b": theirs.state_dict()}, tmp_path / "two.th")
    with pytest.raises(UserError, match="several state dicts \\('a', 'b'\\)") as error:
        pretrained_model("cifar_resnet", str(tmp_path / "two.th"), **TINY)
    one_line(error)


def parsed(*flags: str, command: str = "evaluate"):
    from resnets.cli import build_parser

    args = ["--weights", "w.th", "--model", "resnet20", *flags]
    required = {"evaluate": ["--data", "d"], "export": ["--out", "o"], "predict": ["img.png"], "serve": []}
    return build_parser().parse_args([command, *required[command], *args])


@pytest.mark.parametrize("command", ["evaluate", "export", "predict", "serve"])
def test_every_command_takes_the_presets_and_explicit_values(command):
    imagenet = normalization(parsed("--normalize", "imagenet", command=command))
    assert imagenet.mean.flatten().tolist() == pytest.approx(IMAGENET_MEAN)
    assert imagenet.std.flatten().tolist() == pytest.approx(IMAGENET_STD)
    given = normalization(parsed("--mean", "0.5,0.4,0.3", "--std", "0.2,0.2,0.25", command=command))
    assert given.mean.shape == (3, 1, 1) and given.mean.flatten().tolist() == pytest.approx([0.5, 0.4, 0.3])
    assert given.std.flatten().tolist() == pytest.approx([0.2, 0.2, 0.25])
    assert normalization(parsed("--mean", "0.5,0.4,0.3", command=command)).std is None
    assert normalization(parsed(command=command)) is None


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--mean", "124,117,104"], "--mean '124,117,104' is not 3 comma-separated numbers R,G,B from 0 to 1"),
        (["--mean", "0.5,0.5"], "--mean '0.5,0.5' is not 3"),
        (["--mean", "0.5,nan,0.5"], "is not 3"),
        (
            ["--mean", "0.5,0.5,0.5", "--std", "0.2,0,0.2"],
            "--std '0.2,0,0.2' is not 3 comma-separated numbers R,G,B above 0",
        ),
        (["--std", "0.2,0.2,0.2"], "--std needs --mean"),
        (["--normalize", "cifar"], "--normalize 'cifar' is none of imagenet, cifar-pixel-mean"),
        (["--normalize", "imagenet", "--mean", "0.5,0.5,0.5"], "pass one"),
        (["--mean-of", "data"], "--mean-of DIR goes with --normalize cifar-pixel-mean"),
    ],
)
def test_bad_normalisation_values_are_one_line(flags, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(")) as error:
        normalization(parsed(*flags))
    one_line(error)


def test_cifar_pixel_mean_is_the_training_images_per_pixel_mean(cifar_png):
    for flags, data in (
        (["--normalize", "cifar-pixel-mean", "--mean-of", str(cifar_png)], None),
        (["--normalize", "cifar-pixel-mean"], str(cifar_png)),
    ):
        got = normalization(parsed(*flags, command="export" if data is None else "evaluate"), data=data)
        assert torch.equal(got.mean, pixel_mean(load_split(cifar_png, "train").images)) and got.std is None
    with pytest.raises(UserError, match="cifar-pixel-mean needs --mean-of DIR"):
        normalization(parsed("--normalize", "cifar-pixel-mean", command="predict"))


def test_a_checkpoint_refuses_normalisation_flags(cifar_png, capsys, tmp_path):
    image = str(next((cifar_png / "test").rglob("*.png")))
    for flags in (["--checkpoint", str(tmp_path / "run")], ["--onnx", str(tmp_path / "m.onnx")]):
        assert main(["predict", image, *flags, "--normalize", "imagenet"]) == 2
        err = capsys.readouterr().err.strip()
        assert "--normalize is for --weights files that carry no normalisation" in err and "\n" not in err
    assert main(["evaluate", "--checkpoint", str(tmp_path), "--data", str(cifar_png), "--mean", "0.5,0.5,0.5"]) == 2
    assert "--mean is for --weights files" in capsys.readouterr().err


@pytest.fixture(scope="module")
def resnet20_file(tmp_path_factory):
    """pytorch_resnet_cifar10's ResNet-20, as its trainer saves it, and the network."""
    torch.manual_seed(0)
    theirs = trained_like(TheirResNet(3))
    return save_theirs(tmp_path_factory.mktemp("theirs") / "resnet20.th", theirs), theirs


def their_outputs(theirs: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The reference's outputs on uint8 images, preprocessed as their test loader does (ToTensor, Normalize)."""
    mean, std = (torch.tensor(v).view(3, 1, 1) for v in (IMAGENET_MEAN, IMAGENET_STD))
    with torch.no_grad():
        return theirs((images.float() / 255 - mean) / std)


def test_evaluate_gives_their_error_and_says_which_normalisation_it_assumed(resnet20_file, cifar_png, capsys):
    file, theirs = resnet20_file
    test = load_split(cifar_png, "test")
    wrong = (their_outputs(theirs, test.images).argmax(1) != test.labels).sum().item()
    common = ["evaluate", "--model", "resnet20", "--weights", file, "--data", str(cifar_png), "--split", "test"]
    for flags, assumed in (([], True), (["--normalize", "imagenet"], False)):
        capsys.readouterr()
        assert main([*common, *flags, "--json"]) == 0
        out, err = capsys.readouterr()
        assert json.loads(out)["top1_error"] == pytest.approx(100 * wrong / len(test.labels))
        said = "assuming ImageNet's per-channel mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225)"
        assert [line for line in err.splitlines() if "carries no input normalisation" in line] == (
            [
                f"resnets: warning: {file} carries no input normalisation; {said} (evaluate, predict, serve and "
                "export take another as --normalize imagenet|cifar-pixel-mean or --mean R,G,B --std R,G,B)"
            ]
            if assumed
            else []
        )


def test_export_carries_the_normalisation_into_safetensors_and_onnx(resnet20_file, tmp_path, capsys):
    file, theirs = resnet20_file
    flags = ["--weights", file, "--model", "resnet20", "--mean", "0.5,0.4,0.3", "--std", "0.2,0.2,0.25"]
    out = tmp_path / "r.safetensors"
    assert main(["export", *flags, "--out", str(out)]) == 0, capsys.readouterr().err
    metadata = read_metadata(out)
    assert metadata["pixel_mean"] == pytest.approx([0.5, 0.4, 0.3]) and metadata["pixel_std"] == pytest.approx(
        [0.2, 0.2, 0.25]
    )
    exported = load_trained(out)
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(exported.model.eval()(images), theirs(images), rtol=0, atol=1e-5)
    assert main(["export", "--weights", file, "--model", "resnet20", "--out", str(tmp_path / "w.safetensors")]) == 0
    assert "assuming ImageNet's" in capsys.readouterr().err  # and the assumed one travels too
    assert read_metadata(tmp_path / "w.safetensors")["pixel_std"] == pytest.approx(IMAGENET_STD)
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    assert main(["export", *flags, "--format", "onnx", "--out", str(tmp_path / "r.onnx")]) == 0
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "r.onnx")).metadata_props}
    assert json.loads(props["mean"]) == pytest.approx([0.5, 0.4, 0.3]) and json.loads(props["std"]) == pytest.approx(
        [0.2, 0.2, 0.25]
    )


def test_export_takes_one_source(resnet20_file, tmp_path, capsys):
    file, _ = resnet20_file
    out = ["--out", str(tmp_path / "x.safetensors")]
    for flags in ([], ["--checkpoint", file, "--weights", file, "--model", "resnet20"]):
        assert main(["export", *flags, *out]) == 2
        assert "export needs --checkpoint RUN_OR_FILE, or --weights FILE with --model NAME" in capsys.readouterr().err
    assert main(["export", "--weights", file, "--out", file, "--force", "--model", "resnet20"]) == 2
    assert "is the input" in capsys.readouterr().err  # never overwritten, even with --force


def test_fine_tuning_starts_from_their_weights(resnet20_file, cifar_png, tmp_path):
    file, theirs = resnet20_file
    with pytest.warns(UserWarning, match="assuming ImageNet"):
        trainer = Trainer(tiny_config(cifar_png, tmp_path / "run", weights=file, val_split=20, batch_size=8))
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    ours = (images.float() / 255 - trainer.data.mean) / trainer.data.std
    with torch.no_grad():
        torch.testing.assert_close(trainer.model.eval()(ours), their_outputs(theirs, images), rtol=0, atol=1e-5)


def test_serve_workers_and_the_api_get_the_normalisation_as_plain_values(resnet20_file):
    from resnets.cli.serve import _worker_spec, serve_options
    from resnets.inference import load_predictor

    file, _ = resnet20_file
    args = parsed("--mean", "0.5,0.4,0.3", "--std", "0.2,0.2,0.25", command="serve")
    spec = json.loads(json.dumps(_worker_spec(args, serve_options(args).settings())))["predictor"]
    predictor = load_predictor(**{**spec, "weights": file, "backend": "torch"})
    assert predictor.trained.pixel_mean.flatten().tolist() == pytest.approx([0.5, 0.4, 0.3])
    assert predictor.trained.pixel_std.flatten().tolist() == pytest.approx([0.2, 0.2, 0.25])
    assert predictor.view_name == "full"  # a CIFAR network is tested on the whole 32x32 image
