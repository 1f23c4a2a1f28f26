"""Every toolkit optimizer, schedule and callback on 2 replicas (MirroredStrategy).

A covering design: six short fits, each combining one optimizer, nested
schedules and some callbacks, so that every optimizer (SGD with a momentum
schedule (InverseSqrt), SWATS, Lookahead, LARS, GradientNoise), every schedule (Warmup,
Cosine, Scaled, Exponential, StepDecay, OneCycle, InverseSqrt, InverseTime,
Linear, CyclicCosine) and every callback (Warmup, PlateauDecay,
MomentumSchedule, SWA, SnapshotEnsemble, PreciseBatchNorm, CurveDiagnostics)
runs under the suite's 2-logical-CPU `MirroredStrategy`. Each fit is
repeated on one device with the same global batch: the two must end with the
same weights. The 2-replica run sums two half-batch gradients (each scaled
by 1/2) where one device takes one mean: the same sum in another order, a
float32 rounding difference of ~1e-7 per step; over 8 steps `rtol=1e-5,
atol=1e-6` bounds it, while a wrong scale (a replica's gradient counted
twice, a schedule stepped twice per step) changes the weights by >1e-3.
"""

import keras
import numpy as np
import pytest

import kerastoolkit as kt
from kerastoolkit import schedules as S
from tests.conftest import requires_tensorflow
from tests.harness import assert_saved_model_roundtrip

pytestmark = requires_tensorflow

BATCH, EPOCHS = 32, 2  # 4 steps per epoch, 16 examples per replica


@pytest.fixture(scope="module")
def data():
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.data[:128] / 16.0).astype("float32"), d.target[:128].astype("int32")


def mlp(optimizer, bn=False):
    keras.utils.set_random_seed(0)
    layers = [keras.Input((64,)), keras.layers.Dense(16, use_bias=not bn)]
    if bn:
        layers.append(keras.layers.BatchNormalization())
    layers += [keras.layers.Activation("relu"), keras.layers.Dense(10, activation="softmax")]
    model = keras.Sequential(layers)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    return model


DESIGN = {
    "sgd_momentum_schedule": (
        lambda: kt.optimizers.SGD(
            S.Warmup(S.Scaled(S.Cosine(0.2, total=8)), warmup_steps=2),
            momentum=S.InverseSqrt(0.9)),
        lambda tmp: [kt.callbacks.PlateauDecay(monitor="loss", patience=0, min_delta=10.0),
                     kt.callbacks.CurveDiagnostics(log_dir=tmp / "diag")]),
    "swats": (
        lambda: kt.optimizers.SWATS(S.Exponential(0.01, k=0.1)),
        lambda tmp: [kt.callbacks.SWA(start_epoch=0)]),
    "lookahead": (
        lambda: kt.optimizers.Lookahead(
            keras.optimizers.SGD(S.StepDecay(0.2, factor=0.5, every=3), momentum=0.5),
            sync_period=3),
        lambda tmp: [kt.callbacks.Warmup(warmup_steps=3)]),
    "lars": (
        lambda: kt.optimizers.LARS(S.OneCycle(2.0, total=8), momentum=0.5),
        lambda tmp: [kt.callbacks.MomentumSchedule(S.Warmup(0.9, warmup_steps=5, start=0.5))]),
    "gradient_noise": (
        lambda: kt.optimizers.GradientNoise(
            keras.optimizers.SGD(S.Scaled(S.InverseTime(0.2, k=0.2), multiplier=0.5)), eta=0.01,
            seed=3),
        lambda tmp: []),
    "adam_linear": (
        lambda: keras.optimizers.Adam(S.Warmup(S.Linear(0.01, total=8), warmup_steps=2)),
        lambda tmp: [kt.callbacks.PlateauDecay(monitor="loss", patience=0, min_delta=10.0,
                                               factor=0.5)]),
}


def run(case, strategy, data, tmp_path):
    make_optimizer, make_callbacks = DESIGN[case]
    x, y = data
    with strategy.scope():
        model = mlp(make_optimizer())
    callbacks = make_callbacks(tmp_path / strategy.__class__.__name__)
    hist = model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0,
                     callbacks=callbacks)
    return model, hist, callbacks


@pytest.mark.parametrize("case", sorted(DESIGN))
def test_two_replicas_match_one_device(case, mirrored_strategy, data, tmp_path):
    import tensorflow as tf

    one, hist_one, _ = run(case, tf.distribute.get_strategy(), data, tmp_path)
    two, hist_two, callbacks = run(case, mirrored_strategy, data, tmp_path)
    assert two.distribute_strategy.num_replicas_in_sync == 2
    moved = max(float(np.max(np.abs(a - b))) for a, b in
                zip(one.get_weights(), mlp("sgd").get_weights()))
    assert moved > 1e-3  # the fit trained
    for a, b in zip(two.get_weights(), one.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(hist_two.history["loss"], hist_one.history["loss"], rtol=1e-5)
    for cb in callbacks:
        if isinstance(cb, kt.callbacks.CurveDiagnostics):
            assert cb.report is not None
            assert (tmp_path / "MirroredStrategy" / "diag" / "epochs.csv").exists()
        if isinstance(cb, kt.callbacks.PlateauDecay):
            assert cb.reductions == [1]  # the same plateau decisions on 2 replicas
        if isinstance(cb, kt.callbacks.SWA):
            assert cb.count == 2


def test_batchnorm_inference_paths_agree_after_toolkit_fit(mirrored_strategy, data, tmp_path):
    """Sorted labels: the two replicas see different digits and their BN
    moving statistics drift apart (Keras 3: `aggregation="none"`);
    PreciseBatchNorm recomputes one set for both, so predict, call and the
    exported SavedModel agree to 1e-5."""
    x, y = data
    order = np.argsort(y, kind="stable")
    x, y = x[order], y[order]
    with mirrored_strategy.scope():
        model = mlp(keras.optimizers.SGD(0.1), bn=True)
    snapshots = kt.callbacks.SnapshotEnsemble(cycles=1, total_epochs=EPOCHS,
                                              directory=tmp_path / "snaps")
    model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0,
              callbacks=[snapshots, kt.callbacks.PreciseBatchNorm(x, num_batches=4,
                                                                  batch_size=BATCH)])
    bn = model.layers[1]
    replicas = [np.asarray(v) for v in bn.moving_mean.value.values]
    np.testing.assert_array_equal(replicas[0], replicas[1])
    direct = keras.ops.convert_to_numpy(model(x, training=False))
    np.testing.assert_allclose(model.predict(x, batch_size=BATCH, verbose=0), direct, atol=1e-5)
    assert_saved_model_roundtrip(model, x, tmp_path, atol=1e-5)
    assert len(snapshots.ensemble.members) == 1
