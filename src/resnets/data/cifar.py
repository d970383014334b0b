"""The official CIFAR-10 python format: reading its pickled batches, and downloading the archive."""

from __future__ import annotations

import os
import pickle
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch

from ..core.download import download
from ..core.errors import UserError
from ..core.paths import default_data_dir
from .classes import model_labels
from .imageset import ImageSet

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-py"
SPLITS = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
HAND_DOWNLOAD = f"download {CIFAR10_ARCHIVE} by hand, extract it and pass --data DIR"

# numpy's array-unpickling function, reached without naming numpy.core (numpy 2 renamed it numpy._core).
_reconstruct = np.ndarray((0,)).__reduce__()[0]


def find_cifar10(path: Path) -> Path | None:
    """`path` or its cifar-10-batches-py subfolder, whichever holds batches.meta; None if neither does."""
    for folder in (path, path / CIFAR10_FOLDER):
        if (folder / "batches.meta").is_file():
            return folder
    return None


def read_cifar10(folder: Path, split: str, classes: list[str] | None = None) -> ImageSet:
    """Read split "train" (data_batch_1..5) or "test" (test_batch) of an official cifar-10-batches-py folder.

    `classes`: the model's class list, which the labels then index (a CIFAR class it lacks is an error).
    """
    if split not in SPLITS:
        raise UserError(f"CIFAR-10 folder {folder} has splits train and test, not {split!r}; val is carved from train")
    names = [str(name) for name in _unpickle(folder / "batches.meta").get("label_names", [])]
    images, labels = [], []
    for name in SPLITS[split]:
        path = folder / name
        batch = _unpickle(path)
        data, batch_labels = batch.get("data"), np.asarray(batch.get("labels", []), np.int64)
        if not (
            isinstance(data, np.ndarray)
            and data.dtype == np.uint8
            and data.shape == (len(batch_labels), 3 * 32 * 32)
            and np.all((batch_labels >= 0) & (batch_labels < len(names)))
        ):
            raise UserError(f"{path} is not a CIFAR-10 batch (uint8 'data' [N, 3072] and N 'labels'); {HAND_DOWNLOAD}")
        images.append(data.reshape(-1, 3, 32, 32))  # rows hold the red, green, blue planes, each row-major 32x32
        labels.append(batch_labels)
    pixels, targets = torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels))
    if classes is None:
        return ImageSet(pixels, targets, names)
    as_model = torch.tensor(model_labels(names, classes, folder), dtype=torch.long)
    return ImageSet(pixels, as_model[targets], classes)


def default_cifar10() -> Path:
    """Where `resnets train` without --data keeps CIFAR-10: the data folder (core.paths) / <folder>."""
    return default_data_dir() / CIFAR10_FOLDER


def download_cifar10(root: Path, *, url: str = CIFAR10_URL, md5: str = CIFAR10_MD5, progress: bool = True) -> Path:
    """Download and extract the official CIFAR-10 archive into `root`, unless already there; return its folder."""
    root = Path(root).expanduser()
    folder = root / CIFAR10_FOLDER
    if folder.is_dir():
        return folder
    archive = root / CIFAR10_ARCHIVE
    download(url, archive, digest=md5, algorithm="md5", what="CIFAR-10", fix=HAND_DOWNLOAD, progress=progress)
    _extract(archive, root)
    return folder


def _extract(archive: Path, root: Path) -> None:
    """Unpack the cifar-10-batches-py folder of `archive` into `root`: all of it, or nothing."""
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".cifar-10-extract."))
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                parts = PurePosixPath(member.name).parts
                if PurePosixPath(member.name).is_absolute() or ".." in parts:
                    raise UserError(f"{archive} holds an unsafe path {member.name!r}; delete it and {HAND_DOWNLOAD}")
                if member.isfile() and parts[:1] == (CIFAR10_FOLDER,):  # regular files only: no links, no devices
                    dest = tmp.joinpath(*parts)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    source = tar.extractfile(member)
                    assert source is not None  # None for links and devices only
                    with source as src, open(dest, "wb") as dst:
                        shutil.copyfileobj(src, dst)
        if not (tmp / CIFAR10_FOLDER).is_dir():
            raise UserError(f"{archive} has no {CIFAR10_FOLDER} folder; delete it and {HAND_DOWNLOAD}")
        os.replace(tmp / CIFAR10_FOLDER, root / CIFAR10_FOLDER)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise UserError(f"cannot extract {archive} ({e}); delete it and {HAND_DOWNLOAD}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles containers and numpy arrays only, so a tampered batch file cannot run code."""

    ALLOWED = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.ALLOWED[module, name]
        except KeyError:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR-10 batch") from None


def _unpickle(path: Path) -> dict[str, Any]:
    """The dict pickled in an official batch file (written by Python 2, hence latin1 for its byte strings)."""
    try:
        with open(path, "rb") as f:
            obj = _ArrayUnpickler(f, encoding="latin1").load()
    except FileNotFoundError:
        raise UserError(f"CIFAR-10 file {path} is missing; {HAND_DOWNLOAD}") from None
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError) as e:
        raise UserError(f"cannot read CIFAR-10 file {path} ({e}); {HAND_DOWNLOAD}") from None
    if not isinstance(obj, dict):
        raise UserError(f"CIFAR-10 file {path} does not hold a dict; {HAND_DOWNLOAD}")
    return obj
