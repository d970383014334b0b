"""The split a model is tested on, labelled by the model's classes: a folder with only that split is enough."""

import pytest

from resnets.core.errors import UserError
from resnets.data import ImageFiles, ImageSet
from resnets.evaluation.splits import evaluation_split

from ..conftest import CIFAR_CLASSES
from ..data.conftest import save_image

CIFAR_RUN = {"val_split": 100, "split_seed": 0, "augmentation": "cifar"}
PHOTO_RUN = {"val_split": 0, "augmentation": "imagenet"}


@pytest.fixture
def test_only(tmp_path):
    """ROOT/test/{dog,cat}/ with two random 32x32 PNGs each; no ROOT/train."""
    for c, name in enumerate(["dog", "cat"]):
        for i in range(2):
            save_image(tmp_path / "test" / name / f"{i}.png", size=(32, 32), seed=10 * c + i)
    return str(tmp_path)


@pytest.mark.parametrize("config, kind", [(CIFAR_RUN, ImageSet), (PHOTO_RUN, ImageFiles)])
def test_the_test_split_alone_is_labelled_by_the_model(test_only, config, kind):
    images = evaluation_split(test_only, "test", config, CIFAR_CLASSES, progress=False)
    assert isinstance(images, kind) and images.classes == CIFAR_CLASSES
    cat, dog = CIFAR_CLASSES.index("cat"), CIFAR_CLASSES.index("dog")
    assert images.labels.tolist() == [cat, cat, dog, dog]  # folders in name order, labels in the model's


def test_a_held_out_split_still_needs_the_training_folder(test_only):
    with pytest.raises(UserError, match=r"split folder .*train does not exist \(splits in .*: test\)"):
        evaluation_split(test_only, "val", CIFAR_RUN, CIFAR_CLASSES, progress=False)
