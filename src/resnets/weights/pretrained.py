"""Weights from elsewhere: published ones by tag (the table is in releases.py), each file downloaded once into the
cache, and the state dicts of other implementations placed on our networks' keys (`placed`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..core.download import download
from ..core.errors import UserError
from ..core.paths import default_cache_dir
from ..models import BasicBlock, ResNet, ZeroPadShortcut
from .releases import RELEASES, TORCHVISION_V1, Release


def is_tag(weights: str) -> bool:
    """Whether `weights` names a published release (rather than a file)."""
    return weights in RELEASES


def available(tag: str = TORCHVISION_V1) -> list[str]:
    """The models that release `tag` has weights for."""
    return _release(tag).models()


def release_options(tag: str, options: dict[str, Any]) -> dict[str, Any]:
    """`options` with the release's architecture options added; a conflicting one is a ValueError saying why."""
    release = _release(tag)
    for key, value in release.options.items():
        if key in options and options[key] != value:
            raise ValueError(f"{tag} weights need {key}={value!r}, not {options[key]!r}: {release.about}")
    return {**options, **release.options}


def weights_file(
    model_name: str,
    tag: str = TORCHVISION_V1,
    *,
    cache_dir: Path | None = None,
    progress: bool = True,
    base_url: str | None = None,
) -> Path:
    """The release's file for `model_name`, downloaded on first use into `cache_dir` ($RESNETS_CACHE/weights).

    `base_url` replaces the folder the file is published in (a mirror, or a local server in tests).
    """
    release = _release(tag)
    if model_name not in release.models():
        has = ", ".join(release.models()) or "none yet"
        raise UserError(f"{tag} has no weights for {model_name!r}; it has weights for: {has}")
    if release.packaged is not None:
        return release.packaged_file(model_name)
    url, digest = release.files[model_name]
    name = url.rsplit("/", 1)[1]
    if base_url is not None:
        url = f"{base_url.rstrip('/')}/{name}"
    dest = (cache_dir or default_cache_dir() / "weights") / name
    if not dest.is_file():  # only a verified download is ever renamed into place
        built = ", ".join(f"{k}={v!r}" for k, v in release.options.items())
        fix = f"download it manually into {dest.parent}, or pass it as --weights FILE with {built}"
        download(url, dest, digest=digest, what=f"the {tag} weights of {model_name}", fix=fix, progress=progress)
    return dest


def _release(tag: str) -> Release:
    if tag not in RELEASES:
        raise UserError(f"unknown weights tag {tag!r}; choose one of {', '.join(RELEASES)} or pass a weights file")
    return RELEASES[tag]


# Prefixes that wrap every key of a model: DataParallel/DDP's and torch.compile's.
WRAPPERS = ("module.", "_orig_mod.")
NOT_COUNTED = ".num_batches_tracked"  # a step counter, not a weight: files before PyTorch 0.4.1 lack it
# The head's name in pytorch_resnet_cifar10 (akamaster), whose option-A shortcut centres the identity channels.
CENTRED_HEAD = "linear"


def placed(state: dict[str, torch.Tensor], model: ResNet, source: str) -> dict[str, torch.Tensor]:
    """`state` under `model`'s key names and channel order, the mapping found from the keys and shapes alone.

    Wrapper prefixes go (DataParallel's `module.`, torch.compile's `_orig_mod.`, and any leading name every key shares
    that the model lacks); a module the model names otherwise (a head called `linear`) is placed where the one module
    with the same parameters, and if need be shapes, is left. Keys that fit nowhere keep their names (load_weights
    lists them); a key that fits several places is one line naming it.
    """
    own = model.state_dict()
    named = _unwrapped(state, {k.split(".")[0] for k in own}, source)
    left = _modules([k for k in named if k not in own])
    free = _modules([k for k in own if k not in named])
    fits = {module: _fits(module, leaves, free, named, own) for module, leaves in left.items()}
    claims = [target for found in fits.values() for target in found]
    for module, found in fits.items():
        if len(found) > 1 or (found and claims.count(found[0]) > 1):
            key = next(original for k, (original, _) in named.items() if k.rsplit(".", 1)[0] == module)
            rivals = [m for m, f in fits.items() if found[0] in f]
            why = (
                f"{' and '.join(found[:2])} fit it alike"
                if len(found) > 1
                else f"{' and '.join(rivals[:2])} fit {found[0]}"
            )
            raise UserError(
                f"{source}: cannot tell where {key} belongs ({why}); rename its keys to the model's "
                "(see its state_dict()) or drop the extra ones"
            )
    moved = {module: found[0] for module, found in fits.items() if found}  # a module's name in the file -> ours
    out = {}
    for key, (original, tensor) in named.items():
        module, leaf = key.rsplit(".", 1) if "." in key else ("", key)
        out[f"{moved[module]}.{leaf}" if module in moved else key if key in own else original] = tensor
    if moved.get(CENTRED_HEAD) and any(isinstance(m, ZeroPadShortcut) for m in model.modules()):
        out = _zero_channels_appended(out, model)
    return out


def _unwrapped(state: dict[str, torch.Tensor], tops: set[str], source: str) -> dict[str, tuple[str, torch.Tensor]]:
    """Each key without wrapper prefixes -> (its name in the file, its tensor); two keys that become one: one line."""
    names = {}
    for key in state:
        name = key
        while name.startswith(WRAPPERS):
            name = name.split(".", 1)[1]
        names[key] = name
    # A leading name every key shares and the model lacks wraps it too (Lightning's `model.`, a `net.` ...).
    while names and len({n.split(".")[0] for n in names.values()}) == 1:
        head = next(iter(names.values())).split(".")[0]
        if head in tops or not all("." in n for n in names.values()):
            break
        names = {k: n.split(".", 1)[1] for k, n in names.items()}
    out: dict[str, tuple[str, torch.Tensor]] = {}
    for key, name in names.items():
        if name in out:
            raise UserError(f"{source}: {out[name][0]} and {key} are both {name}; keep one of them in the file")
        out[name] = (key, state[key])
    return out


def _modules(keys: list[str]) -> dict[str, set[str]]:
    """Module name -> the names of its tensors (num_batches_tracked aside)."""
    modules: dict[str, set[str]] = {}
    for key in keys:
        if "." in key and not key.endswith(NOT_COUNTED):
            module, leaf = key.rsplit(".", 1)
            modules.setdefault(module, set()).add(leaf)
    return modules


def _fits(module: str, leaves: set[str], free: dict[str, set[str]], named: dict, own: dict) -> list[str]:
    """The model's unfilled modules with the same tensors as the file's `module`; if several, those of equal shapes."""
    fits = [m for m, theirs in free.items() if theirs == leaves]
    if len(fits) > 1:
        fits = [m for m in fits if all(named[f"{module}.{x}"][1].shape == own[f"{m}.{x}"].shape for x in leaves)]
    return fits


def _zero_channels_appended(state: dict[str, torch.Tensor], model: ResNet) -> dict[str, torch.Tensor]:
    """Weights trained with option-A shortcuts that pad `planes // 4` zero channels on each side (the identity in
    the middle, as pytorch_resnet_cifar10 does), with their channels reordered for ours, which append the zeros.

    Each stage's channels are reordered so that its identity channels come first: the convs and BNs that write the
    residual stream, the convs that read it and the head follow, so the network computes exactly their function.
    Without it, their ResNet-20 errs on 77.54% of CIFAR-10's test images, not 8.27%.
    """
    out = dict(state)
    stem = model.conv1.out_channels
    order = torch.arange(stem)  # our channel i of the stream is their channel order[i]

    def take(key: str, dim: int, index: torch.Tensor) -> None:
        if key in out and out[key].dim() > dim and out[key].shape[dim] == len(index):  # else load_weights says
            out[key] = out[key].index_select(dim, index)

    for name, block in model.named_modules():
        if not isinstance(block, BasicBlock):
            continue
        take(f"{name}.conv1.weight", 1, order)
        if isinstance(block.downsample, ZeroPadShortcut):
            width, side = block.bn2.num_features, block.bn2.num_features // 4
            rest = [c for c in range(width) if not side <= c < side + len(order)]
            order = torch.cat([side + order, torch.tensor(rest, dtype=torch.long)])
        take(f"{name}.conv2.weight", 0, order)
        for leaf in ("weight", "bias", "running_mean", "running_var"):
            take(f"{name}.bn2.{leaf}", 0, order)
    take("fc.weight", 1, order)
    return out
