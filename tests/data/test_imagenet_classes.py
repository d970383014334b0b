from pathlib import Path

import pytest

from resnets.core.errors import UserError
from resnets.data.imagenet_classes import IMAGENET_WNIDS, imagenet_name

# Imagenette's ten classes and their names (fastai's Imagenette, as listed in the shared data README).
IMAGENETTE = {
    "n01440764": "tench",
    "n02102040": "English springer",
    "n02979186": "cassette player",
    "n03000684": "chain saw",
    "n03028079": "church",
    "n03394916": "French horn",
    "n03417042": "garbage truck",
    "n03425413": "gas pump",
    "n03445777": "golf ball",
    "n03888257": "parachute",
}


def test_thousand_sorted_unique_wnids():
    assert len(IMAGENET_WNIDS) == 1000
    assert IMAGENET_WNIDS == sorted(set(IMAGENET_WNIDS))
    assert all(w.startswith("n") and len(w) == 9 and w[1:].isdigit() for w in IMAGENET_WNIDS)
    # fixed points of the standard order: index 0 is the tench, 999 toilet tissue
    assert IMAGENET_WNIDS[0] == "n01440764" and imagenet_name(IMAGENET_WNIDS[999]) == "toilet tissue"


def test_imagenette_names():
    assert {w: imagenet_name(w) for w in IMAGENETTE} == IMAGENETTE


def test_unknown_wnid_is_a_user_error():
    with pytest.raises(UserError, match="n99999999"):
        imagenet_name("n99999999")


def test_the_list_ships_as_package_data():
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    assert "data/*.tsv" in pyproject
