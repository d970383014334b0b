"""Figure helpers: the paper's names, and a clear message when matplotlib is missing."""

import sys

import pytest

from resnets.analysis.plots import response_plot
from resnets.analysis.responses import LayerResponses
from resnets.core.errors import UserError
from resnets.core.tables import paper_name


@pytest.mark.parametrize(
    "model, name", [("resnet56", "ResNet-56"), ("plain20", "plain-20"), ("resnext50_32x4d", "resnext50_32x4d")]
)
def test_paper_names(model, name):
    assert paper_name(model) == name


def test_missing_matplotlib_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)  # makes the import fail
    with pytest.raises(UserError, match=r"pip install 'resnets\[plots\]'"):
        response_plot([LayerResponses("resnet20", True, [1.0, 0.5])], tmp_path / "r.png", title="t")
    assert not (tmp_path / "r.png").exists()
