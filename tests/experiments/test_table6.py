"""`resnets experiment table6`: parameters and error next to Table 6's."""

import torch

from resnets.cli import main
from resnets.weights.files import load_trained

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


def test_a_finished_member_keeps_its_final_weights_and_needs_no_checkpoint(cifar_png, tmp_path, capsys):
    out = tmp_path / "table6"
    args = ["experiment", "table6", "--depths", "20", "--data", str(cifar_png), "--out", str(out)]
    flags = ["--iters", "2", "--eval-every", "2", "--batch-size", "24", "--val-split", "0", "--precision", "fp32"]
    assert main([*args, *flags]) == 0
    member = out / "resnet20"
    final = load_trained(member / "final.safetensors")
    last = load_trained(member / "last.pt")
    assert final.iteration == 2 and final.val_error == last.val_error
    for key, value in last.model.state_dict().items():
        assert torch.equal(final.model.state_dict()[key], value), key
    (member / "last.pt").unlink()  # what a committed reproduction keeps once a member has finished
    capsys.readouterr()
    assert main([*args, *flags]) == 0
    assert "resnet20: finished" in capsys.readouterr().out and not (member / "last.pt").exists()
    assert "| ResNet-20 | 20 | 0.27M | 0.27M | " in (out / "results.md").read_text()
    assert load_trained(member).val_error == final.val_error  # a run folder resolves to its final weights
