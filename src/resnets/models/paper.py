"""The paper's reported figures (../shared/PAPER.md), kept as data for tables that compare against them."""

# Table 1: multiply-adds of the ImageNet family at 224x224 (conv and fc layers).
TABLE1_MACS = {
    "resnet18": 1.8e9,
    "resnet34": 3.6e9,
    "resnet50": 3.8e9,
    "resnet101": 7.6e9,
    "resnet152": 11.3e9,
    "plain34": 3.6e9,
}

# Table 6: parameters and CIFAR-10 test error (%) of the CIFAR family.
TABLE6 = {
    "resnet20": (0.27e6, 8.75),
    "resnet32": (0.46e6, 7.51),
    "resnet44": (0.66e6, 7.17),
    "resnet56": (0.85e6, 6.97),
    "resnet110": (1.7e6, 6.43),
    "resnet1202": (19.4e6, 7.93),
}

# Table 2: ImageNet top-1 validation error (%), 10-crop testing, of the nets Fig. 4 draws as curves
# (its ResNets use option A shortcuts).
# Fig. 6 (the CIFAR plain nets) gives curves only, so no plain CIFAR net has a number here.
TABLE2_TOP1 = {
    "plain18": 27.94,
    "plain34": 28.54,
    "resnet18": 27.88,
    "resnet34": 25.03,
}

# Fig. 6's three panels (Sec. 4.2): the plain nets, the ResNets, and ResNet-110 against ResNet-1202; error (%) from
# 0 to 20 over iterations counted in units of 1e4.
FIG6_PANELS = {
    "plain nets": ("plain20", "plain32", "plain44", "plain56"),
    "ResNets": ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110"),
    "ResNet-110 and ResNet-1202": ("resnet110", "resnet1202"),
}
FIG6_MAX_ERROR = 20.0
FIG6_ITERATION_UNIT = 10_000


def reported_error(model: str) -> float | None:
    """The top-1 error (%) the paper states for `model`: Table 6 (CIFAR-10 test) or Table 2 (ImageNet val)."""
    if model in TABLE6:
        return TABLE6[model][1]
    return TABLE2_TOP1.get(model)
