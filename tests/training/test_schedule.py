from resnets.engine.schedule import Plateau, learning_rate, milestones_passed, warmup_finished
from resnets.training.config import TrainConfig
from resnets.training.loop import scheduled_lr


def test_lr_divided_by_10_at_32k_and_48k():
    c = TrainConfig()
    lrs = [scheduled_lr(c, i, warming_up=False, plateau=Plateau()) for i in (0, 31999, 32000, 47999, 48000, 63999)]
    assert lrs == [0.1, 0.1, 0.1 * 0.1, 0.1 * 0.1, 0.1 * 0.1 * 0.1, 0.1 * 0.1 * 0.1]
    assert [milestones_passed(i, [32000, 48000]) for i in (31999, 32000, 48000)] == [0, 1, 2]
    assert learning_rate(0.001, 0.1, 1) == 0.001 * 0.1


def test_warmup_holds_0_01_until_training_error_below_80_percent():
    c = TrainConfig(warmup_lr=0.01)
    assert scheduled_lr(c, 100, warming_up=True, plateau=Plateau()) == 0.01
    assert not warmup_finished(0.85, c.warmup_until_error) and warmup_finished(0.79, c.warmup_until_error)


def test_plateau_divides_after_patience_validations_without_improvement():
    c = TrainConfig(lr_schedule="plateau", plateau_patience=2, plateau_min_delta=0.5)
    plateau = Plateau()
    divided = [plateau.update(e, patience=2, min_delta=0.5) for e in (50.0, 40.0, 39.8, 39.6, 39.0, 38.0, 38.0)]
    # 39.8 and 39.6 improve by less than 0.5 points on 40.0: two stalls, then a division; 38.0 resets the count
    assert divided == [False, False, False, True, False, False, False]
    assert scheduled_lr(c, 10**6, warming_up=False, plateau=plateau) == 0.1 * 0.1
    assert Plateau(**plateau.state_dict()) == plateau


def test_plateau_ignores_the_milestones():
    c = TrainConfig(lr_schedule="plateau")
    assert scheduled_lr(c, 63999, warming_up=False, plateau=Plateau()) == 0.1
