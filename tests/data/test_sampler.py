import torch

from resnets.core.rng import seeded_generator
from resnets.data.sampler import EpochSampler


def test_each_epoch_is_a_permutation_and_drops_the_last_partial_batch():
    s = EpochSampler(10, 3, seed=0)
    assert s.steps_per_epoch == 3
    epoch0 = torch.cat([s.global_batch(i) for i in range(3)])
    assert len(epoch0) == 9 and len(set(epoch0.tolist())) == 9
    epoch1 = torch.cat([s.global_batch(i) for i in range(3, 6)])
    assert not torch.equal(epoch0, epoch1)


def test_order_depends_only_on_seed_and_iteration():
    a, b = EpochSampler(100, 8, seed=3), EpochSampler(100, 8, seed=3)
    assert torch.equal(a.global_batch(57), b.global_batch(57))  # b jumps straight there, as a resumed run does
    assert not torch.equal(a.global_batch(57), EpochSampler(100, 8, seed=4).global_batch(57))


def test_ranks_take_disjoint_shares_of_the_global_batch():
    whole = EpochSampler(100, 8, seed=1).global_batch(5)
    shares = [EpochSampler(100, 8, seed=1, rank=r, world_size=2).share(whole) for r in range(2)]
    assert torch.equal(torch.cat(shares), whole)


def test_seeded_generator_is_a_function_of_its_keys():
    draw = lambda *keys: torch.rand(4, generator=seeded_generator(0, *keys))  # noqa: E731
    assert torch.equal(draw(1, 2), draw(1, 2))
    assert not torch.equal(draw(1, 2), draw(2, 1))


def test_every_random_stream_has_its_own_key():
    from resnets.core import rng

    streams = {name: value for name, value in vars(rng).items() if name.isupper() and isinstance(value, int)}
    assert len(streams) == 6 and len(set(streams.values())) == len(streams), streams
    # The committed runs resume on these values: they never change.
    assert (rng.EPOCH_ORDER, rng.CIFAR_AUGMENT, rng.IMAGENET_AUGMENT, rng.LIGHTING) == (1, 2, 3, 4)
    assert (rng.DETECTION_FLIP, rng.DETECTION_SAMPLE) == (11, 12)
