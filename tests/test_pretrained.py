"""Pretrained weights by tag: the release table, one verified download into the cache, and offline errors.

The network is never used: a local server on 127.0.0.1 serves a real ResNet-18 state dict made here, under a
name that carries its own SHA-256 prefix as torchvision's files do, and the table entry is pointed at it.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest
import torch
from tqdm import tqdm

from resnets import create_model
from resnets.core.errors import UserError
from resnets.data.imagenet_classes import IMAGENET_WNIDS
from resnets.weights import pretrained
from resnets.weights.files import pretrained_model
from resnets.weights.pretrained import RELEASES, TORCHVISION_V1, available, weights_file

from .local_server import closed_port_url, serve

TORCHVISION_MODELS = [
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "wide_resnet50_2",
    "wide_resnet101_2",
]


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> tuple[Path, str, dict[str, torch.Tensor]]:
    """A served folder holding resnet18-<sha256 prefix>.pth (a real ResNet-18, 45 MB); the file, prefix and state."""
    torch.manual_seed(3)
    state = create_model("resnet18").state_dict()
    folder = tmp_path_factory.mktemp("served")
    staged = folder / "staged.pth"
    torch.save(state, staged)
    prefix = hashlib.sha256(staged.read_bytes()).hexdigest()[:8]
    file = staged.rename(folder / f"resnet18-{prefix}.pth")
    return file, prefix, state


@pytest.fixture
def server(published):
    with serve(published[0].parent) as (url, requests):
        yield url, requests


@pytest.fixture
def release(monkeypatch, published, server):
    """Point the table's resnet18 entry at the local server."""
    file, prefix, _ = published
    monkeypatch.setitem(RELEASES[TORCHVISION_V1].files, "resnet18", (f"{server[0]}/{file.name}", prefix))


def cached(tmp_path: Path) -> list[str]:
    """The files in the default weights cache (conftest points RESNETS_CACHE into tmp_path)."""
    folder = tmp_path / "default-cache" / "weights"
    return sorted(os.listdir(folder)) if folder.exists() else []


def test_the_release_table_holds_torchvision_imagenet1k_v1_files_and_their_digest_prefixes():
    assert available(TORCHVISION_V1) == TORCHVISION_MODELS
    for name, (url, digest) in RELEASES[TORCHVISION_V1].files.items():
        assert re.fullmatch(f"https://download.pytorch.org/models/{name}-{digest}\\.pth", url)
        assert re.fullmatch("[0-9a-f]{8}", digest)
    assert RELEASES[TORCHVISION_V1].files["resnet50"][1] == "0676ba61"


def test_create_model_downloads_once_with_progress_and_sets_torchvision_options(
    tmp_path, published, server, release, capsys
):
    file, _, state = published
    model = create_model("resnet18", weights="torchvision-v1")
    assert (model.config.stride_on, model.config.shortcut, model.config.num_classes) == ("3x3", "B", 1000)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert server[1] == [f"/{file.name}"]
    assert cached(tmp_path) == [file.name]
    assert (tmp_path / "default-cache" / "weights" / file.name).read_bytes() == file.read_bytes()
    err = capsys.readouterr().err
    size = tqdm.format_sizeof(file.stat().st_size)  # 46.8M
    assert f"downloading {file.name}" in err and f"{size}/{size}" in err  # a progress bar counting bytes

    again = create_model("resnet18", weights="torchvision-v1")
    assert server[1] == [f"/{file.name}"]  # no second request: the cached file is used
    assert torch.equal(again.fc.weight, state["fc.weight"])


def test_pretrained_model_by_tag_comes_with_torchvision_normalisation_and_imagenet_classes(published, release):
    trained = pretrained_model("resnet18", "torchvision-v1")
    assert torch.equal(trained.pixel_std, torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1))
    assert (trained.train_config, trained.model.config.stride_on) == ({}, "3x3")
    assert trained.classes == IMAGENET_WNIDS  # the file names no classes: its 1000 outputs are the sorted wnids


def test_a_conflicting_option_is_refused_before_downloading(tmp_path, server, release):
    with pytest.raises(ValueError, match="torchvision-v1 weights need stride_on='3x3', not '1x1': torchvision's"):
        create_model("resnet18", weights="torchvision-v1", stride_on="1x1")
    with pytest.raises(ValueError, match="need shortcut='B', not 'A'"):
        create_model("resnet18", weights="torchvision-v1", shortcut="A")
    assert server[1] == [] and cached(tmp_path) == []


def test_a_digest_mismatch_is_an_error_and_leaves_nothing_in_the_cache(tmp_path, monkeypatch, published, server):
    file, prefix, _ = published
    wrong = "0" * 8 if prefix != "0" * 8 else "1" * 8
    monkeypatch.setitem(RELEASES[TORCHVISION_V1].files, "resnet18", (f"{server[0]}/{file.name}", wrong))
    with pytest.raises(UserError, match=f"sent a file with sha256 {prefix}[0-9a-f]{{56}}, expected {wrong}; try again"):
        create_model("resnet18", weights="torchvision-v1")
    assert server[1] == [f"/{file.name}"]
    assert cached(tmp_path) == []


def test_offline_is_a_one_line_error_naming_the_url_and_the_manual_fix(tmp_path, monkeypatch):
    url = closed_port_url("resnet18-f37072fd.pth")
    monkeypatch.setitem(RELEASES[TORCHVISION_V1].files, "resnet18", (url, "f37072fd"))
    with pytest.raises(UserError) as info:
        create_model("resnet18", weights="torchvision-v1")
    message = str(info.value)
    assert message.startswith(f"could not download the torchvision-v1 weights of resnet18 from {url} (")
    assert "download it manually into" in message and "--weights FILE with stride_on='3x3', shortcut='B'" in message
    assert "\n" not in message
    assert cached(tmp_path) == []


def test_base_url_and_cache_dir_redirect_the_download(tmp_path, monkeypatch, published, server):
    file, prefix, _ = published
    elsewhere = f"https://download.pytorch.org/models/{file.name}"  # never contacted
    monkeypatch.setitem(RELEASES[TORCHVISION_V1].files, "resnet18", (elsewhere, prefix))
    path = weights_file("resnet18", cache_dir=tmp_path / "mine", progress=False, base_url=server[0] + "/")
    assert path == tmp_path / "mine" / file.name and path.read_bytes() == file.read_bytes()
    assert server[1] == [f"/{file.name}"] and cached(tmp_path) == []


@pytest.mark.parametrize("name", ["plain18", "resnet20", "cifar_resnet"])
def test_models_without_published_weights_are_an_error_listing_those_with(name):
    with pytest.raises(UserError, match=f"torchvision-v1 has no weights for '{name}'; it has weights for: resnet18, "):
        create_model(name, weights="torchvision-v1")


def test_an_unknown_tag_is_an_error():
    with pytest.raises(UserError, match="unknown weights tag 'torchvision-v9'; choose one of torchvision-v1"):
        weights_file("resnet18", "torchvision-v9")


def test_building_a_model_imports_no_download_code():
    import subprocess
    import sys

    code = "import sys; from resnets.models import create_model; create_model('resnet18'); print(sorted(sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert (
        "resnets.weights.files" not in loaded
        and pretrained.__name__ not in loaded
        and "resnets.core.download" not in loaded
    )
