"""The one rate mechanism (`_rate.py`): issue 13, items 1 and 2.

1. A float rate stays a float: `.keras` checkpoints written mid-training by
   `keras.callbacks.ModelCheckpoint` reload with the optimizer's state.
2. Wrappers are unwrapped recursively: under `mixed_float16` the optimizer is
   `LossScaleOptimizer(Lookahead(SGD))`, and the callbacks still drive SGD's rate.
"""

import warnings

import keras
import numpy as np
import pytest

import kerastoolkit as kt
from tests.callbacks._util import AppliedLR, InjectMetric, probe_data, probe_model


def _mlp(optimizer, seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)]
    )
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def _data(n=64):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 6)).astype("float32"), rng.integers(0, 3, n).astype("int32")


@pytest.mark.parametrize(
    "make_callback",
    [
        lambda d: kt.callbacks.PlateauDecay(monitor="fake", patience=0, factor=0.5),
        lambda d: kt.callbacks.Warmup(warmup_steps=6),
        lambda d: kt.callbacks.SnapshotEnsemble(cycles=1, total_epochs=2, directory=d),
    ],
    ids=["PlateauDecay", "Warmup", "SnapshotEnsemble"],
)
def test_keras_checkpoint_mid_training_keeps_the_optimizer_state(tmp_path, make_callback):
    x, y = _data()
    model = _mlp(keras.optimizers.Adam(1e-2))
    n_before = None

    class Count(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            nonlocal n_before
            n_before = len(self.model.optimizer.variables)

    path = str(tmp_path / "ckpt.keras")
    callbacks = [
        InjectMetric("fake", [1.0, 2.0]),
        make_callback(str(tmp_path / "snaps")),
        Count(),
        keras.callbacks.ModelCheckpoint(path),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x, y, batch_size=16, epochs=2, callbacks=callbacks, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Skipping variable loading for optimizer"
        loaded = keras.saving.load_model(path)
    assert n_before == len(model.optimizer.variables)
    assert len(loaded.optimizer.variables) == len(model.optimizer.variables)
    assert int(loaded.optimizer.iterations) == 8
    for saved, live in zip(loaded.optimizer.variables, model.optimizer.variables):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(saved), keras.ops.convert_to_numpy(live), rtol=1e-6
        )
    # The optimizer's config is still a float rate (the rate of the next step).
    assert isinstance(loaded.optimizer.get_config()["learning_rate"], float)


@pytest.fixture
def mixed_float16():
    keras.mixed_precision.set_global_policy("mixed_float16")
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_warmup_drives_the_rate_under_loss_scale_and_lookahead(mixed_float16):
    inner = keras.optimizers.SGD(0.1)
    model = probe_model(kt.optimizers.Lookahead(inner, sync_period=50))
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    x, y, bs = probe_data(4)
    probe = AppliedLR()
    model.fit(x, y, batch_size=bs, epochs=1, shuffle=False, verbose=0,
              callbacks=[kt.callbacks.Warmup(warmup_steps=4), probe])
    expected = 0.1 * np.arange(4) / 4  # Goyal et al.: lr(t) = η·t/W for t < W
    np.testing.assert_allclose(probe.applied, expected, atol=1e-6)


def test_plateau_decay_lowers_the_applied_rate_under_loss_scale_and_lookahead(mixed_float16):
    model = probe_model(kt.optimizers.Lookahead(keras.optimizers.SGD(0.1), sync_period=50))
    x, y, bs = probe_data(2)
    probe = AppliedLR()
    model.fit(x, y, batch_size=bs, epochs=3, shuffle=False, verbose=0, callbacks=[
        InjectMetric("fake", [1.0, 2.0, 3.0]),
        kt.callbacks.PlateauDecay(monitor="fake", patience=0, factor=0.5),
        probe,
    ])
    # Epoch 0 sets the best; epochs 1 and 2 do not improve: x0.5 after each.
    expected = np.repeat([0.1, 0.1, 0.05], 2)
    np.testing.assert_allclose(probe.applied, expected, rtol=1e-5)


def test_resuming_mid_warmup_from_a_checkpoint_needs_the_target_then_continues_exactly(tmp_path):
    x, y, bs = probe_data(4)
    fit = dict(batch_size=bs, shuffle=False, verbose=0)
    whole = AppliedLR()
    probe_model(keras.optimizers.SGD(0.1)).fit(
        x, y, epochs=2, callbacks=[kt.callbacks.Warmup(warmup_steps=6), whole], **fit
    )
    np.testing.assert_allclose(whole.applied, [0, 1 / 60, 2 / 60, 3 / 60, 4 / 60, 5 / 60, .1, .1],
                               atol=1e-6)
    path = str(tmp_path / "half.keras")
    first = probe_model(keras.optimizers.SGD(0.1))
    first.fit(x, y, epochs=1, callbacks=[kt.callbacks.Warmup(warmup_steps=6)], **fit)
    first.save(path)
    resumed = keras.saving.load_model(path)  # a new optimizer: the saved rate is 4/60
    with pytest.raises(ValueError, match="Warmup starts at optimizer step 4.*warmup_target"):
        resumed.fit(x, y, epochs=2, initial_epoch=1,
                    callbacks=[kt.callbacks.Warmup(warmup_steps=6)], **fit)
    resumed = keras.saving.load_model(path)
    probe = AppliedLR()
    resumed.fit(x, y, epochs=2, initial_epoch=1,
                callbacks=[kt.callbacks.Warmup(warmup_steps=6, warmup_target=0.1), probe], **fit)
    np.testing.assert_allclose(probe.applied, whole.applied[4:], rtol=1e-5, atol=1e-7)


def test_float_rate_per_step_callbacks_refuse_steps_per_execution():
    model = probe_model(keras.optimizers.SGD(0.1))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=model.loss, steps_per_execution=2)
    x, y, bs = probe_data(4)
    with pytest.raises(ValueError, match="steps_per_execution=2"):
        model.fit(x, y, batch_size=bs, epochs=1, verbose=0,
                  callbacks=[kt.callbacks.Warmup(warmup_steps=4)])


def test_precise_batchnorm_samples_random_rows_of_sorted_arrays():
    """Issue 13 item 8b: the first rows of sorted data are not the population."""
    x = np.arange(1000, dtype="float32")[:, None]  # sorted: mean 499.5, std 288.7
    model = keras.Sequential([keras.Input((1,)), keras.layers.BatchNormalization()])
    used = kt.callbacks.recompute_batchnorm_statistics(model, x, num_batches=5, batch_size=20)
    assert used == 5
    mean = float(keras.ops.convert_to_numpy(model.layers[0].moving_mean)[0])
    var = float(keras.ops.convert_to_numpy(model.layers[0].moving_variance)[0])
    # 100 of 1000 rows: the sample mean is within 4 standard errors of 499.5.
    assert abs(mean - 499.5) < 4 * x.std() / np.sqrt(100)
    assert 0.5 < var / x.var() < 1.5
    # Seeded: the same seed gives the same statistics, another seed others.
    again = keras.Sequential([keras.Input((1,)), keras.layers.BatchNormalization()])
    kt.callbacks.recompute_batchnorm_statistics(again, x, num_batches=5, batch_size=20)
    assert float(keras.ops.convert_to_numpy(again.layers[0].moving_mean)[0]) == mean
    other = keras.Sequential([keras.Input((1,)), keras.layers.BatchNormalization()])
    kt.callbacks.recompute_batchnorm_statistics(other, x, num_batches=5, batch_size=20, seed=1)
    assert float(keras.ops.convert_to_numpy(other.layers[0].moving_mean)[0]) != mean


def test_momentum_schedule_drives_toolkit_sgd():
    """Issue 13 item 3: on `kt.optimizers.SGD` (TypeError on main)."""
    beta = keras.optimizers.schedules.PolynomialDecay(0.5, decay_steps=4, end_learning_rate=0.9)
    model = probe_model(kt.optimizers.SGD(0.1, momentum=0.5))
    x, y, bs = probe_data(6)
    probe = AppliedLR()
    model.fit(x, y, batch_size=bs, epochs=1, shuffle=False, verbose=0,
              callbacks=[kt.callbacks.MomentumSchedule(beta), probe])
    # m_t = β_t·m_(t-1) − η·g with g = 1, w_(t+1) = w_t + m_t (Sutskever et al.).
    m, expected = 0.0, []
    for t in range(6):
        b = 0.5 + 0.4 * min(t, 4) / 4
        m = b * m - 0.1
        expected.append(-m)
    np.testing.assert_allclose(probe.applied, expected, rtol=1e-5)
    assert model.optimizer.momentum == pytest.approx(0.9)  # a float again after fit


def test_momentum_schedule_refuses_an_optimizer_without_momentum():
    model = probe_model(keras.optimizers.Adagrad(0.1))
    x, y, bs = probe_data(2)
    beta = keras.optimizers.schedules.PolynomialDecay(0.5, 4, 0.9)
    with pytest.raises(ValueError, match="Adagrad has no momentum or beta_1"):
        model.fit(x, y, batch_size=bs, epochs=1, verbose=0,
                  callbacks=[kt.callbacks.MomentumSchedule(beta)])


def test_snapshot_ensemble_cycles_end_at_total_epochs(tmp_path):
    """Issue 13 item 5: no snapshot in the middle of a cycle, no silent `None`."""
    with pytest.raises(ValueError, match=r"total_epochs=9 or 12.*Received: total_epochs=10"):
        kt.callbacks.SnapshotEnsemble(cycles=3, total_epochs=10, directory=tmp_path)
    x, y, bs = probe_data(2)
    model = probe_model(keras.optimizers.SGD(0.1))
    snap = kt.callbacks.SnapshotEnsemble(cycles=2, total_epochs=4, directory=tmp_path / "s")
    with pytest.raises(ValueError, match="no snapshot would be taken"):
        model.fit(x, y, batch_size=bs, epochs=1, verbose=0, callbacks=[snap])
    stop = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: setattr(model, "stop_training", True))
    with pytest.warns(UserWarning, match="no snapshot was taken"):
        model.fit(x, y, batch_size=bs, epochs=4, verbose=0, callbacks=[snap, stop])
    assert snap.ensemble is None


def test_models_trained_with_rate_callbacks_are_freed():
    """The rate programs (kept per optimizer) hold the optimizer, model and
    callbacks weakly: a model trained with Warmup and PlateauDecay, on a float
    rate or a schedule, is freed once the script drops it (it used to stay
    alive for the life of the process)."""
    import gc
    import weakref

    def train(schedule):
        lr = keras.optimizers.schedules.CosineDecay(0.1, 100) if schedule else 0.1
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        model.compile(keras.optimizers.SGD(lr), "mse")
        model.fit(np.ones((16, 4)), np.ones((16, 2)), batch_size=8, epochs=2, verbose=0,
                  callbacks=[kt.callbacks.Warmup(warmup_steps=2),
                             kt.callbacks.PlateauDecay(monitor="loss", patience=0)])
        return weakref.ref(model), weakref.ref(model.optimizer)

    for schedule in (False, True):
        refs = train(schedule)
        gc.collect()
        assert [r() for r in refs] == [None, None], f"schedule={schedule}"


def test_a_reused_warmup_continues_its_target_unless_the_user_set_another_rate():
    """The same `Warmup` in a second `fit`: stopped mid-warmup, it goes on to
    its target (the rate left in the optimizer is a point on the way); after
    `optimizer.learning_rate = ...` between the fits, the new rate is the
    target (it used to be ignored)."""
    x, y, bs = probe_data(2)
    fit = dict(batch_size=bs, shuffle=False, verbose=0)
    model = probe_model(keras.optimizers.SGD(0.1))
    warmup = kt.callbacks.Warmup(warmup_steps=4)
    model.fit(x, y, epochs=1, callbacks=[warmup], **fit)  # steps 0, 1: rates 0, 0.025
    probe = AppliedLR()
    model.fit(x, y, epochs=1, callbacks=[warmup, probe], **fit)  # steps 2, 3
    np.testing.assert_allclose(probe.applied, [0.05, 0.075], rtol=1e-5)
    model.fit(x, y, epochs=1, callbacks=[warmup], **fit)  # steps 4, 5: warmed up, 0.1
    model.optimizer.learning_rate = 0.01
    probe = AppliedLR()
    model.fit(x, y, epochs=1, callbacks=[warmup, probe], **fit)  # steps 6, 7
    np.testing.assert_allclose(probe.applied, [0.01, 0.01], rtol=1e-5)
