"""Settings for experiments small enough for a test: ResNet-20 and plain-20, 4 iterations of batch 32."""

import pytest

TINY = dict(iters=4, eval_every=2, batch_size=32, val_split=100, precision="fp32")
TINY_FLAGS = ["--iters", "4", "--eval-every", "2", "--batch-size", "32", "--val-split", "100", "--precision", "fp32"]


@pytest.fixture(scope="module")
def private_cache(tmp_path_factory):
    """For module-scoped fixtures, which run before the per-test cache is set: a cache of their own."""
    with pytest.MonkeyPatch.context() as m:
        m.setenv("RESNETS_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield
