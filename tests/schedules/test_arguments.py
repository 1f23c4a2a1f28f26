"""Bad arguments raise ValueError/TypeError naming the argument and the value;
`get_config`/`from_config` round-trips for every class."""

import keras
import numpy as np
import pytest

import kerastoolkit as kt
from tests.harness import assert_config_roundtrip

S = kt.schedules

BAD_ARGUMENTS = [
    # (factory, error type, text that must appear in the message)
    (lambda: S.Exponential(-0.1, k=0.1), ValueError, "initial_learning_rate=-0.1"),
    (lambda: S.Exponential("0.1", k=0.1), TypeError, "initial_learning_rate='0.1'"),
    (lambda: S.Exponential(0.1, k=-1.0), ValueError, "k=-1.0"),
    (lambda: S.InverseTime(float("nan"), k=0.1), ValueError, "initial_learning_rate=nan"),
    (lambda: S.InverseTime(0.1, k=None), TypeError, "k=None"),
    (lambda: S.InverseSqrt(-1.0), ValueError, "initial_learning_rate=-1.0"),
    (lambda: S.InverseSqrt(True), TypeError, "initial_learning_rate=True"),
    (lambda: S.Linear(0.1, total=0), ValueError, "total=0"),
    (lambda: S.Linear(0.1, total=-5), ValueError, "total=-5"),
    (lambda: S.Cosine(0.1, total=0), ValueError, "total=0"),
    (lambda: S.Cosine(0.1, total=10.5), TypeError, "total=10.5"),
    (lambda: S.Cosine(0.1, total=10, steps_per_epoch=2.5), TypeError, "steps_per_epoch=2.5"),
    (lambda: S.Cosine(0.1, total=10, steps_per_epoch="10"), TypeError, "steps_per_epoch='10'"),
    (lambda: S.Cosine(0.1, total=10, steps_per_epoch=0), ValueError, "steps_per_epoch=0"),
    (lambda: S.Cosine(0.1, total=10, name=""), TypeError, "name=''"),
    (lambda: S.StepDecay(0.1, factor=0.0, every=5), ValueError, "factor=0.0"),
    (lambda: S.StepDecay(0.1, factor=1.5, every=5), ValueError, "factor=1.5"),
    (lambda: S.StepDecay(0.1, factor=-0.5, every=5), ValueError, "factor=-0.5"),
    (lambda: S.StepDecay(0.1, factor=0.5, every=0), ValueError, "every=0"),
    (lambda: S.Warmup(S.Cosine(0.1, 10), warmup_steps=-1), ValueError, "warmup_steps=-1"),
    (lambda: S.Warmup(S.Cosine(0.1, 10), warmup_steps=2.0), TypeError, "warmup_steps=2.0"),
    (lambda: S.Warmup(S.Cosine(0.1, 10), warmup_steps=3, start=-0.1), ValueError, "start=-0.1"),
    (lambda: S.Warmup("cosine", warmup_steps=3), TypeError, "schedule='cosine'"),
    (lambda: S.Warmup(-0.1, warmup_steps=3), ValueError, "schedule=-0.1"),
    (lambda: S.Warmup(0.1, warmup_steps=3, steps_per_epoch=-2), ValueError, "steps_per_epoch=-2"),
    (lambda: S.CyclicCosine(0.1, total=10, cycles=0), ValueError, "cycles=0"),
    (lambda: S.CyclicCosine(0.1, total=10, cycles=11), ValueError, "cycles=11"),
    (lambda: S.CyclicCosine(0.1, total=0, cycles=1), ValueError, "total=0"),
    (lambda: S.OneCycle(-1.0, total=10), ValueError, "max_learning_rate=-1.0"),
    (lambda: S.OneCycle(1.0, total=0), ValueError, "total=0"),
    (lambda: S.OneCycle(1.0, total=10, pct_start=1.0), ValueError, "pct_start=1.0"),
    (lambda: S.OneCycle(1.0, total=10, div_factor=0.5), ValueError, "div_factor=0.5"),
    (lambda: S.OneCycle(1.0, total=10, final_div_factor=0.0), ValueError, "final_div_factor=0.0"),
    (lambda: S.OneCycle(1.0, total=10, anneal_strategy="exp"), ValueError, "anneal_strategy='exp'"),
    (lambda: S.Scaled(S.Cosine(0.1, 10), multiplier=-0.5), ValueError, "multiplier=-0.5"),
    (lambda: S.Scaled(S.Cosine(0.1, 10), multiplier="1"), TypeError, "multiplier='1'"),
    (lambda: S.Scaled(keras.optimizers.SGD(), 1.0), TypeError, "schedule=<"),
]


def test_bad_arguments_raise():
    # One test for all cases: each test pays Keras's clear_session().
    for factory, error, text in BAD_ARGUMENTS:
        with pytest.raises(error) as info:
            factory()
        message = str(info.value)
        assert "Received: " in message, message
        assert text in message, message
        argument = text.split("=")[0]
        assert f"`{argument}`" in message, message


def test_scaled_multiplier_setter_validates():
    scaled = S.Scaled(S.Cosine(0.1, 10), multiplier=0.5)
    with pytest.raises(ValueError, match=r"Received: multiplier=-2.0"):
        scaled.multiplier = -2.0
    with pytest.raises(TypeError, match=r"Received: multiplier=None"):
        scaled.multiplier = None
    assert scaled.multiplier == 0.5


ALL_SCHEDULES = [
    lambda: S.Exponential(0.3, k=0.1, steps_per_epoch=4, name="exp"),
    lambda: S.InverseTime(0.3, k=0.1),
    lambda: S.InverseSqrt(0.3, steps_per_epoch=7),
    lambda: S.Linear(0.3, total=20),
    lambda: S.Cosine(0.3, total=20, steps_per_epoch=5),
    lambda: S.StepDecay(0.3, factor=0.1, every=20, steps_per_epoch=3),
    lambda: S.CyclicCosine(0.3, total=20, cycles=4),
    lambda: S.OneCycle(0.3, total=20, pct_start=0.4, anneal_strategy="linear"),
    lambda: S.Warmup(0.3, warmup_steps=5, start=0.01),
    lambda: S.Warmup(keras.optimizers.schedules.CosineDecay(0.3, 100), warmup_steps=5),
    lambda: S.Scaled(0.3, multiplier=0.5),
    lambda: S.Warmup(S.Scaled(S.Cosine(0.3, total=20), multiplier=0.25), warmup_steps=3,
                     steps_per_epoch=2),
    lambda: S.Scaled(S.Warmup(S.Cosine(0.3, total=20), warmup_steps=3)),
]


def test_config_roundtrip():
    steps = np.arange(40)
    for factory in ALL_SCHEDULES:
        schedule = factory()
        rebuilt = assert_config_roundtrip(schedule)
        assert rebuilt is not schedule
        np.testing.assert_allclose(
            np.broadcast_to(keras.ops.convert_to_numpy(rebuilt(steps)), steps.shape),
            np.broadcast_to(keras.ops.convert_to_numpy(schedule(steps)), steps.shape),
            rtol=1e-6,
            err_msg=str(schedule.get_config()),
        )


def test_scaled_config_records_current_multiplier():
    scaled = S.Scaled(S.Cosine(0.3, total=20), multiplier=1.0)
    scaled.multiplier = 0.125
    rebuilt = assert_config_roundtrip(scaled)
    assert rebuilt.multiplier == 0.125
    assert rebuilt.get_config()["multiplier"] == 0.125
    np.testing.assert_allclose(
        float(keras.ops.convert_to_numpy(rebuilt(4))),
        0.125 * 0.5 * 0.3 * (1 + np.cos(np.pi * 4 / 20)),
        rtol=1e-6,
    )
    # The rebuilt schedule owns its own variable.
    rebuilt.multiplier = 0.5
    assert scaled.multiplier == 0.125


def test_scaled_multiplier_reads_the_variable():
    scaled = S.Scaled(S.Cosine(0.3, total=20), multiplier=0.3)
    assert scaled.multiplier == 0.3  # as given, not its float32 rounding
    scaled.multiplier = 0.1
    assert scaled.multiplier == 0.1
    # A value written to the variable by other means (e.g. restored) is read.
    scaled._multiplier.assign(0.75)
    assert scaled.multiplier == 0.75
    np.testing.assert_allclose(
        float(keras.ops.convert_to_numpy(scaled(0))), 0.75 * 0.3, rtol=1e-6)


def test_scaled_exposes_schedule_and_retrace_flag():
    inner = S.Cosine(0.3, total=20)
    scaled = S.Scaled(inner, multiplier=0.5)
    assert scaled.schedule is inner
    assert isinstance(scaled.multiplier, float)
    assert S.Scaled.needs_retrace() == (keras.backend.backend() == "jax")
    assert scaled.needs_retrace() == S.Scaled.needs_retrace()


def test_every_public_schedule_is_registered_under_its_own_name():
    # A name clash (e.g. with the callback `kt.callbacks.Warmup`) would make a
    # `.keras` file load the wrong class.
    import kerastoolkit.callbacks  # noqa: F401  (registers its classes too)

    for name in S.__all__:
        cls = getattr(S, name)
        registered = keras.saving.get_registered_name(cls)
        assert registered.startswith("kerastoolkit>"), registered
        assert keras.saving.get_registered_object(registered) is cls, registered
