import json
import subprocess
import sys

import pytest

from resnets.cli import main

from .models.test_resnet import PAPER_NAMES


def test_list_shows_every_name(capsys):
    assert main(["list"]) == 0
    assert set(PAPER_NAMES) <= set(capsys.readouterr().out.split())


def test_summary_json_resnet50(capsys):
    assert main(["summary", "resnet50", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert isinstance(report["macs"], int) and isinstance(report["params"], int)
    assert report["macs"] == pytest.approx(3.8e9, rel=0.05)
    assert report["input_size"] == 224


def test_summary_options(capsys):
    main(["summary", "resnet50", "--stride-on", "3x3", "--shortcut", "C", "--input-size", "112", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["input_size"] == 112 and report["params"] > 25_557_032


def test_summary_all_markdown(capsys):
    assert main(["summary", "--all", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| model |")
    assert "| resnet50 | 224 | 25.56M |  | 3.858G | 3.8G |" in out


def test_bad_model_is_one_line_error_without_traceback():
    proc = subprocess.run([sys.executable, "-m", "resnets", "summary", "resnet51"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "unknown model 'resnet51'" in proc.stderr
    assert "Traceback" not in proc.stderr
