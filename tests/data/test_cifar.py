from __future__ import annotations

import functools
import hashlib
import http.server
import os
import pickle
import re
import socket
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from resnets.core.errors import UserError
from resnets.data import download_cifar10
from resnets.data.cifar import read_cifar10

from .conftest import CIFAR_CLASSES, FakeCifar, write_batch


@pytest.fixture
def server(fake_cifar_archive: tuple[Path, str]) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 serving the folder of the fake archive; yields its base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(fake_cifar_archive[0].parent))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)  # fast shutdown
        thread.start()
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
        httpd.shutdown()
        thread.join()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/cifar-10-python.tar.gz"  # nothing listens there any more


def test_read_keeps_the_official_pixel_layout_labels_and_classes(fake_cifar: FakeCifar) -> None:
    train = read_cifar10(fake_cifar.folder, "train")
    assert train.classes == CIFAR_CLASSES
    assert train.images.shape == (15, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.images.is_contiguous()
    # A row holds the red plane, then green, then blue, each row-major.
    assert train.images[4, 1, 2, 3] == fake_cifar.train_data[4, 1024 + 2 * 32 + 3]
    np.testing.assert_array_equal(train.images.reshape(15, -1).numpy(), fake_cifar.train_data)
    assert train.labels.dtype == torch.int64 and train.labels.tolist() == fake_cifar.train_labels.tolist()
    test = read_cifar10(fake_cifar.folder, "test")
    np.testing.assert_array_equal(test.images.reshape(3, -1).numpy(), fake_cifar.test_data)
    assert test.labels.tolist() == fake_cifar.test_labels.tolist()


def test_read_unknown_split_is_an_error(fake_cifar: FakeCifar) -> None:
    with pytest.raises(UserError, match="has splits train and test, not 'val'"):
        read_cifar10(fake_cifar.folder, "val")


def test_read_missing_batch_is_an_error_naming_it(fake_cifar: FakeCifar) -> None:
    (fake_cifar.folder / "data_batch_3").unlink()
    with pytest.raises(UserError, match=re.escape(f"{fake_cifar.folder / 'data_batch_3'} is missing")):
        read_cifar10(fake_cifar.folder, "train")


def test_read_malformed_batch_is_an_error_naming_it(fake_cifar: FakeCifar) -> None:
    write_batch(fake_cifar.folder / "test_batch", {"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10]})
    with pytest.raises(UserError, match=re.escape(f"{fake_cifar.folder / 'test_batch'} is not a CIFAR-10 batch")):
        read_cifar10(fake_cifar.folder, "test")


def test_read_refuses_pickles_that_would_run_code(fake_cifar: FakeCifar, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    (fake_cifar.folder / "test_batch").write_bytes(pickle.dumps({"data": Exploit()}, protocol=2))
    with pytest.raises(UserError, match="posix.system is not allowed|os.system is not allowed"):
        read_cifar10(fake_cifar.folder, "test")
    assert not marker.exists()


@pytest.mark.parametrize("scheme", ["http", "file"])
def test_download_fetches_verifies_and_extracts(
    tmp_path: Path, server: str, fake_cifar: FakeCifar, fake_cifar_archive: tuple[Path, str], scheme: str
) -> None:
    archive, md5 = fake_cifar_archive
    url = f"{server}/{archive.name}" if scheme == "http" else archive.as_uri()
    root = tmp_path / "downloads"
    folder = download_cifar10(root, url=url, md5=md5, progress=False)
    assert folder == root / "cifar-10-batches-py"
    assert sorted(os.listdir(root)) == ["cifar-10-batches-py", "cifar-10-python.tar.gz"]  # no temporary leftovers
    assert (root / "cifar-10-python.tar.gz").read_bytes() == archive.read_bytes()
    train = read_cifar10(folder, "train")
    np.testing.assert_array_equal(train.images.reshape(15, -1).numpy(), fake_cifar.train_data)


def test_download_is_skipped_when_the_folder_exists(tmp_path: Path, fake_cifar: FakeCifar) -> None:
    root = fake_cifar.folder.parent
    assert download_cifar10(root, url=closed_port_url(), progress=False) == fake_cifar.folder


def test_download_with_wrong_checksum_is_an_error_and_leaves_nothing(
    tmp_path: Path, server: str, fake_cifar_archive: tuple[Path, str]
) -> None:
    root = tmp_path / "downloads"
    with pytest.raises(UserError, match=f"md5 {fake_cifar_archive[1]}, expected 0123"):
        download_cifar10(root, url=f"{server}/cifar-10-python.tar.gz", md5="0123", progress=False)
    assert os.listdir(root) == []


@pytest.mark.parametrize("where", ["closed port", "missing file"])
def test_download_failure_is_a_one_line_error_with_the_manual_fix(tmp_path: Path, server: str, where: str) -> None:
    url = closed_port_url() if where == "closed port" else f"{server}/nothing-here.tar.gz"
    root = tmp_path / "downloads"
    with pytest.raises(UserError) as info:
        download_cifar10(root, url=url, progress=False)
    message = str(info.value)
    assert message.startswith(f"could not download CIFAR-10 from {url} (")
    assert "download cifar-10-python.tar.gz by hand" in message and "--data DIR" in message
    assert "\n" not in message
    assert os.listdir(root) == []


def test_download_refuses_archive_members_escaping_the_folder(tmp_path: Path, fake_cifar: FakeCifar) -> None:
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        tar.add(fake_cifar.folder, arcname="cifar-10-batches-py")
        tar.add(fake_cifar.folder / "batches.meta", arcname="cifar-10-batches-py/../../escaped")
    root = tmp_path / "downloads"
    md5 = hashlib.md5(evil.read_bytes()).hexdigest()
    with pytest.raises(UserError, match="unsafe path 'cifar-10-batches-py/../../escaped'"):
        download_cifar10(root, url=evil.as_uri(), md5=md5, progress=False)
    assert os.listdir(root) == ["cifar-10-python.tar.gz"]  # verified archive kept, nothing extracted
    assert not (tmp_path / "escaped").exists()
