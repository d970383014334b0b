from resnets.training.config import TrainConfig
from resnets.training.schedule import learning_rate, warmup_finished


def test_lr_divided_by_10_at_32k_and_48k():
    c = TrainConfig()
    lrs = [learning_rate(c, i, warming_up=False) for i in (0, 31999, 32000, 47999, 48000, 63999)]
    assert lrs == [0.1, 0.1, 0.1 * 0.1, 0.1 * 0.1, 0.1 * 0.1 * 0.1, 0.1 * 0.1 * 0.1]


def test_warmup_holds_0_01_until_training_error_below_80_percent():
    c = TrainConfig(warmup_lr=0.01)
    assert learning_rate(c, 100, warming_up=True) == 0.01
    assert not warmup_finished(c, 0.85) and warmup_finished(c, 0.79)
