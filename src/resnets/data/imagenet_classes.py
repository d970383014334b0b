"""The 1000 ImageNet (ILSVRC-2012) classes: wnids in the standard sorted order, with human-readable names."""

# imagenet_classes.tsv holds one line per class, `wnid<TAB>WordNet lemmas`, in the order of the class indices of
# torchvision's and the paper's 1000-way classifiers (wnids sorted, which is how ImageFolder numbers the ILSVRC-2012
# train folders). Source: timm 1.0.31 (Apache-2.0), files timm/data/_info/imagenet_synsets.txt (the order) and
# imagenet_synset_to_lemma.txt (the lemmas, from WordNet 3.0, WordNet licence); the two were joined on the wnid
# and nothing else changed. Shipped with the package because nothing may be downloaded at run time.

from pathlib import Path

from ..core.errors import UserError

_TSV = Path(__file__).with_name("imagenet_classes.tsv")


def _read() -> tuple[list[str], dict[str, str]]:
    wnids, lemmas = [], {}
    for line in _TSV.read_text(encoding="utf-8").splitlines():
        wnid, names = line.split("\t")
        wnids.append(wnid)
        lemmas[wnid] = names
    return wnids, lemmas


IMAGENET_WNIDS: list[str]
_LEMMAS: dict[str, str]
IMAGENET_WNIDS, _LEMMAS = _read()


def imagenet_name(wnid: str) -> str:
    """The class's first WordNet lemma, e.g. 'n01440764' -> 'tench' (two names repeat: 'crane' and 'maillot')."""
    if wnid not in _LEMMAS:
        raise UserError(f"{wnid!r} is not one of the 1000 ImageNet classes (wnids look like 'n01440764')")
    return _LEMMAS[wnid].split(",")[0]
