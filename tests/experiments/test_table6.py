"""`resnets experiment table6`: parameters and error next to Table 6's."""

from resnets.cli import main

from .conftest import TINY_FLAGS


def test_one_depth_next_to_the_paper(cifar_small, tmp_path, capsys):
    out = tmp_path / "table6"
    args = ["experiment", "table6", "--depths", "20", "--data", str(cifar_small), "--out", str(out)]
    assert main([*args, *TINY_FLAGS, "--iters", "2"]) == 0
    text = (out / "results.md").read_text()
    assert "| net | layers | params | paper params | validation error (held-out 100) (%) | paper error (%) |" in text
    row = next(line for line in text.splitlines() if line.startswith("| ResNet-20 |"))
    assert row.startswith("| ResNet-20 | 20 | 0.27M | 0.27M | ") and row.endswith(" | 8.75 |")
    assert "2 iterations" in text


def test_depth_without_a_resnet_is_refused(tmp_path, capsys):
    assert main(["experiment", "table6", "--depths", "26", "--data", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "cifar has a residual net at depths 20,32,44,56,110,1202 only" in capsys.readouterr().err
