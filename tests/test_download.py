"""One download mechanism for data and weights: streamed, digest-checked, atomic, one-line errors."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from resnets.core.download import download
from resnets.core.errors import UserError

from .local_server import closed_port_url, serve

PAYLOAD = os.urandom(3 << 20)  # 3 MiB: several chunks
FIX = "fetch it yourself"


@pytest.fixture
def server(tmp_path: Path):
    folder = tmp_path / "served"
    folder.mkdir()
    (folder / "file.bin").write_bytes(PAYLOAD)
    with serve(folder) as (url, requests):
        yield url, requests


@pytest.mark.parametrize("algorithm", ["sha256", "md5"])
@pytest.mark.parametrize("digits", [8, None])  # a published prefix (torchvision) or the full digest
def test_download_streams_the_file_and_checks_its_digest(tmp_path, server, algorithm, digits):
    digest = hashlib.new(algorithm, PAYLOAD).hexdigest()[:digits]
    dest = tmp_path / "cache" / "deep" / "file.bin"
    download(f"{server[0]}/file.bin", dest, digest=digest, algorithm=algorithm, what="a file", fix=FIX, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert os.listdir(dest.parent) == ["file.bin"]  # no temporary leftovers


def test_progress_bar_counts_bytes(tmp_path, server, capsys):
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    download(f"{server[0]}/file.bin", tmp_path / "f", digest=digest, what="a file", fix=FIX)
    err = capsys.readouterr().err
    assert "downloading file.bin" in err and "3.15M/3.15M" in err  # unit_scale: bytes shown as 3.15MB


def test_digest_mismatch_is_an_error_and_leaves_no_file(tmp_path, server):
    actual = hashlib.sha256(PAYLOAD).hexdigest()
    wrong = "0" if actual[0] != "0" else "1"
    dest = tmp_path / "cache" / "file.bin"
    with pytest.raises(UserError, match=f"sent a file with sha256 {actual}, expected {wrong}; try again or {FIX}"):
        download(f"{server[0]}/file.bin", dest, digest=wrong, what="a file", fix=FIX, progress=False)
    assert os.listdir(dest.parent) == []


@pytest.mark.parametrize("where", ["closed port", "missing file"])
def test_unreachable_is_a_one_line_error_naming_the_url_and_the_fix(tmp_path, server, where):
    url = closed_port_url("file.bin") if where == "closed port" else f"{server[0]}/nothing.bin"
    dest = tmp_path / "cache" / "file.bin"
    with pytest.raises(UserError) as info:
        download(url, dest, digest="00", what="a file", fix=FIX, progress=False)
    message = str(info.value)
    assert message.startswith(f"could not download a file from {url} (") and message.endswith(f"); {FIX}")
    assert "\n" not in message
    assert os.listdir(dest.parent) == []


def test_unwritable_destination_is_an_error_naming_it(tmp_path, server):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(UserError, match=f"cannot write {blocker / 'file.bin'} .*choose a writable folder"):
        download(f"{server[0]}/file.bin", blocker / "file.bin", digest="0", what="a file", fix=FIX, progress=False)


def test_an_empty_digest_is_refused(tmp_path):
    with pytest.raises(ValueError, match="every download is checked"):
        download("http://127.0.0.1:9/x", tmp_path / "x", digest="", what="a file", fix=FIX)
