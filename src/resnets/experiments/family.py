"""The two families of the paper's experiments, and what each needs: a recipe, its nets and its figure."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import UserError
from ..models.registry import CIFAR_PLAIN_DEPTHS, CIFAR_RESNET_DEPTHS, IMAGENET_DEPTHS


@dataclass(frozen=True)
class Family:
    """A data set with its training protocol (the recipe), its nets and its degradation figure."""

    name: str
    dataset: str
    protocol: str  # the section of the paper that specifies training
    recipe: str
    plain_depths: tuple[int, ...]
    residual_depths: tuple[int, ...]
    degradation_depths: tuple[int, ...]  # the depths the paper's degradation figure draws
    degradation_figure: str
    training_line: str  # how that figure draws training error: dashed (Fig. 6) or thin (Fig. 4)
    reported: str  # where the paper's error figures for this family come from

    def recipe_name(self, override: str | None = None) -> str:
        """`override` or the family's recipe."""
        return override or self.recipe

    def check_depths(self, depths: list[int], plain: bool) -> list[int]:
        """`depths` without repeats, if every one has a residual net (and, with `plain`, a plain one)."""
        allowed = [d for d in self.residual_depths if not plain or d in self.plain_depths]
        wrong = [d for d in depths if d not in allowed]
        if wrong or not depths:
            kind = "a plain and a residual net" if plain else "a residual net"
            raise UserError(
                f"--depths {','.join(map(str, depths)) or repr('')}: {self.name} has {kind} at depths "
                f"{','.join(map(str, allowed))} only"
            )
        return list(dict.fromkeys(depths))


FAMILIES = {
    "cifar": Family(
        name="cifar",
        dataset="CIFAR-10",
        protocol="Sec. 4.2",
        recipe="cifar10-paper",
        plain_depths=CIFAR_PLAIN_DEPTHS,
        residual_depths=CIFAR_RESNET_DEPTHS,
        degradation_depths=(20, 32, 44, 56),
        degradation_figure="Fig. 6",
        training_line="dashed",
        reported="Table 6, test error on the CIFAR-10 test set",
    ),
    # Fig. 4: plain-18/34 and ResNet-18/34, trained as Sec. 3.4 (any image-folder data set: ImageNet, Imagenette).
    "imagenet": Family(
        name="imagenet",
        dataset="ImageNet",
        protocol="Sec. 3.4",
        recipe="imagenet-paper",
        plain_depths=tuple(IMAGENET_DEPTHS),
        residual_depths=tuple(IMAGENET_DEPTHS),
        degradation_depths=(18, 34),
        degradation_figure="Fig. 4",
        training_line="thin",
        reported="Table 2, top-1 error on the ImageNet validation set, 10-crop testing",
    ),
}
