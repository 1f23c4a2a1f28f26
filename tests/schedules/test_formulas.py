"""Every schedule, step by step, against the NumPy formulas in `reference.py`."""

import functools

import keras
import numpy as np
import pytest

import kerastoolkit as kt
from tests.schedules import reference as ref

STEPS = 45  # well past the end of every finite schedule below (also per epoch)


def _cases(spe):
    """(schedule, reference function of the step) pairs, non-degenerate."""
    s = kt.schedules
    cosine_inner = functools.partial(ref.cosine, lr0=0.3, total=8, spe=spe)
    keras_inner_sched = keras.optimizers.schedules.ExponentialDecay(0.2, 4, 0.6)
    return {
        "exponential": (
            s.Exponential(0.3, k=0.15, steps_per_epoch=spe),
            functools.partial(ref.exponential, lr0=0.3, k=0.15, spe=spe),
        ),
        "inverse_time": (
            s.InverseTime(0.3, k=0.7, steps_per_epoch=spe),
            functools.partial(ref.inverse_time, lr0=0.3, k=0.7, spe=spe),
        ),
        "inverse_sqrt": (
            s.InverseSqrt(0.3, steps_per_epoch=spe),
            functools.partial(ref.inverse_sqrt, lr0=0.3, spe=spe),
        ),
        "linear": (
            s.Linear(0.3, total=9, steps_per_epoch=spe),
            functools.partial(ref.linear, lr0=0.3, total=9, spe=spe),
        ),
        "cosine": (
            s.Cosine(0.3, total=8, steps_per_epoch=spe),
            cosine_inner,
        ),
        "step_decay": (
            s.StepDecay(0.3, factor=0.5, every=3, steps_per_epoch=spe),
            functools.partial(ref.step_decay, lr0=0.3, factor=0.5, every=3, spe=spe),
        ),
        "cyclic_cosine": (
            s.CyclicCosine(0.3, total=11, cycles=3, steps_per_epoch=spe),
            functools.partial(ref.cyclic_cosine, lr0=0.3, total=11, cycles=3, spe=spe),
        ),
        "one_cycle_cos": (
            s.OneCycle(0.8, total=10, pct_start=0.25, div_factor=10.0,
                       final_div_factor=100.0, steps_per_epoch=spe),
            functools.partial(ref.one_cycle, max_lr=0.8, total=10, pct_start=0.25,
                              div_factor=10.0, final_div_factor=100.0, spe=spe),
        ),
        "one_cycle_linear": (
            s.OneCycle(0.8, total=13, anneal_strategy="linear", steps_per_epoch=spe),
            functools.partial(ref.one_cycle, max_lr=0.8, total=13,
                              anneal="linear", spe=spe),
        ),
        # Warmup(schedule): the wrapped schedule counts in plain steps here.
        "warmup_cosine": (
            s.Warmup(s.Cosine(0.3, total=8, steps_per_epoch=spe), warmup_steps=4,
                     start=0.02, steps_per_epoch=spe),
            functools.partial(ref.warmup, inner=cosine_inner, warmup_steps=4,
                              start=0.02, spe=spe),
        ),
        "warmup_keras": (
            s.Warmup(keras_inner_sched, warmup_steps=5, steps_per_epoch=spe),
            functools.partial(
                ref.warmup, inner=lambda k: 0.2 * 0.6 ** (k / 4), warmup_steps=5,
                spe=spe),
        ),
        "warmup_none": (
            s.Warmup(s.Linear(0.3, total=9, steps_per_epoch=spe), warmup_steps=0,
                     steps_per_epoch=spe),
            functools.partial(ref.linear, lr0=0.3, total=9, spe=spe),
        ),
        "warmup_float": (
            s.Warmup(0.25, warmup_steps=3, start=0.05, steps_per_epoch=spe),
            functools.partial(ref.warmup, inner=lambda k: 0.25, warmup_steps=3,
                              start=0.05, spe=spe),
        ),
        "scaled_step_decay": (
            s.Scaled(s.StepDecay(0.3, 0.1, 2, steps_per_epoch=spe), multiplier=0.4),
            lambda k: 0.4 * ref.step_decay(k, 0.3, 0.1, 2, spe=spe),
        ),
        "scaled_float": (
            s.Scaled(0.3, multiplier=0.7),
            lambda k: 0.21,
        ),
    }


CASE_NAMES = sorted(_cases(None))


def _values(schedule, steps):
    """The schedule at each step: one call on a vector of steps, checked
    against scalar calls (what an optimizer makes) at a few of them."""
    steps = np.asarray(list(steps), dtype="int64")
    values = keras.ops.convert_to_numpy(schedule(steps)).astype("float64")
    values = np.broadcast_to(values, steps.shape)  # a constant may be a scalar
    for i in (0, len(steps) // 2, len(steps) - 1):
        scalar = float(keras.ops.convert_to_numpy(schedule(np.int64(steps[i]))))
        np.testing.assert_allclose(scalar, values[i], rtol=1e-6, atol=1e-8)
    return values


def _scalar_values(schedule, steps):
    """One call per step (Keras's own schedules use `ops.cond`)."""
    return np.array(
        [float(keras.ops.convert_to_numpy(schedule(np.int64(k)))) for k in steps]
    )


@pytest.mark.parametrize("name", CASE_NAMES)
def test_matches_numpy_formula(name):
    for steps_per_epoch in (None, 3):
        schedule, reference = _cases(steps_per_epoch)[name]
        steps = np.arange(STEPS if steps_per_epoch is None else 3 * STEPS // 2)
        got = _values(schedule, steps)
        expected = np.array([reference(int(k)) for k in steps])
        # Non-degenerate: the schedule really changes (except a constant).
        if name != "scaled_float":
            assert np.ptp(expected) > 0.01
        np.testing.assert_allclose(
            got, expected, rtol=2e-5, atol=1e-7, err_msg=f"{steps_per_epoch=}"
        )


def test_steps_per_epoch_is_constant_within_an_epoch():
    schedule = kt.schedules.Cosine(0.5, total=6, steps_per_epoch=7)
    got = _values(schedule, range(7 * 8))
    per_epoch = got.reshape(8, 7)
    np.testing.assert_array_equal(per_epoch, per_epoch[:, :1].repeat(7, axis=1))
    expected = [ref.cosine(7 * e, 0.5, 6, spe=7) for e in range(8)]
    np.testing.assert_allclose(per_epoch[:, 0], expected, rtol=2e-5, atol=1e-7)


def test_large_steps_are_exact():
    # floor(step / steps_per_epoch) and the step-decay drops use integer math:
    # a float32 step would round 16_799_999 (> 2**24) up to the next epoch.
    schedule = kt.schedules.StepDecay(1.0, 0.5, every=1_200_000, steps_per_epoch=7)
    for step in (16_799_999, 16_800_000):
        expected = ref.step_decay(step, 1.0, 0.5, 1_200_000, spe=7)
        got = float(keras.ops.convert_to_numpy(schedule(np.int64(step))))
        assert got == expected, (step, got, expected)


def test_cyclic_cosine_cycle_length_and_restarts():
    schedule = kt.schedules.CyclicCosine(0.4, total=10, cycles=3)
    assert schedule.cycle_length == 4  # ceil(10 / 3)
    got = _values(schedule, range(13))
    np.testing.assert_allclose(got[[0, 4, 8, 12]], 0.4, rtol=1e-6)
    assert np.all(np.diff(got[0:4]) < 0)


KERAS_EQUIVALENTS = [
    (
        lambda: kt.schedules.Cosine(0.3, total=17),
        lambda: keras.optimizers.schedules.CosineDecay(0.3, decay_steps=17, alpha=0.0),
    ),
    (
        lambda: kt.schedules.InverseTime(0.3, k=0.35),
        lambda: keras.optimizers.schedules.InverseTimeDecay(
            0.3, decay_steps=1, decay_rate=0.35),
    ),
    (
        lambda: kt.schedules.Linear(0.3, total=17),
        lambda: keras.optimizers.schedules.PolynomialDecay(
            0.3, decay_steps=17, end_learning_rate=0.0, power=1.0),
    ),
    (
        lambda: kt.schedules.Exponential(0.3, k=0.12),
        lambda: keras.optimizers.schedules.ExponentialDecay(
            0.3, decay_steps=1, decay_rate=float(np.exp(-0.12))),
    ),
    (
        lambda: kt.schedules.Warmup(
            kt.schedules.Cosine(0.3, total=17), warmup_steps=5, start=0.02),
        lambda: keras.optimizers.schedules.CosineDecay(
            0.02, decay_steps=17, alpha=0.0, warmup_target=0.3, warmup_steps=5),
    ),
    (
        lambda: kt.schedules.StepDecay(0.3, factor=0.7, every=4),
        lambda: keras.optimizers.schedules.ExponentialDecay(
            0.3, decay_steps=4, decay_rate=0.7, staircase=True),
    ),
]


@pytest.mark.parametrize("ours, theirs", KERAS_EQUIVALENTS)
def test_agrees_with_keras_schedule(ours, theirs):
    steps = range(30)
    np.testing.assert_allclose(
        _values(ours(), steps), _scalar_values(theirs(), steps), rtol=1e-5, atol=1e-7
    )
