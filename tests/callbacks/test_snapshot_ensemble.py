"""SnapshotEnsemble (Huang et al. 2017) and the Ensemble model."""

import math
import os

import keras
import numpy as np
import pytest

from kerastoolkit.callbacks import SnapshotEnsemble
from kerastoolkit.models import Ensemble
from tests.callbacks._util import AppliedLR, digits, probe_data, probe_model
from tests.conftest import requires_tensorflow
from tests.harness import (assert_config_roundtrip, assert_saved_model_roundtrip,
                           fresh_process_predict)

SPE = 4


def np_snapshot_lr(eta0, total_steps, cycles, t):
    """Huang et al. Eq. (2): η0/2 (cos(π mod(t, ⌈T/M⌉) / ⌈T/M⌉) + 1)."""
    length = math.ceil(total_steps / cycles)
    return eta0 / 2 * (math.cos(math.pi * (t % length) / length) + 1)


def test_snapshot_rate_and_snapshots(tmp_path):
    model = probe_model(keras.optimizers.SGD(0.1))
    x, y, bs = probe_data(SPE)
    snap = SnapshotEnsemble(cycles=3, total_epochs=6, directory=tmp_path / "snaps")
    rec = AppliedLR()
    at_epoch_end = []
    keep = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: at_epoch_end.append(model.get_weights()[0].copy()))
    model.fit(x, y, batch_size=bs, epochs=6, shuffle=False, verbose=0,
              callbacks=[snap, rec, keep])
    expected = [np_snapshot_lr(0.1, 6 * SPE, 3, t) for t in range(6 * SPE)]
    np.testing.assert_allclose(rec.applied, expected, rtol=3e-4, atol=1e-6)
    names = sorted(os.listdir(tmp_path / "snaps"))
    assert names == ["snapshot_01.keras", "snapshot_02.keras", "snapshot_03.keras"]
    assert isinstance(snap.ensemble, Ensemble) and len(snap.ensemble.members) == 3
    for k, member in enumerate(snap.ensemble.members):  # snapshot k = end of cycle k
        np.testing.assert_array_equal(member.get_weights()[0], at_epoch_end[2 * k + 1])
    ens = snap.ensemble(x[:3])
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(ens),
        np.mean([at_epoch_end[e][0, 0] * x[:3] for e in (1, 3, 5)], axis=0), rtol=1e-5)


@pytest.mark.slow
@requires_tensorflow
def test_snapshot_ensemble_on_digits_beats_best_member(tmp_path):
    (x, y), (xt, yt) = digits()
    x, xt = x.reshape(len(x), -1), xt.reshape(len(xt), -1)
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(keras.optimizers.SGD(0.2, momentum=0.9), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    snap = SnapshotEnsemble(cycles=4, total_epochs=16, directory=tmp_path / "snaps")
    model.fit(x, y, batch_size=64, epochs=16, verbose=0, callbacks=[snap])

    def acc(probs):
        return float(np.mean(np.argmax(probs, -1) == yt))

    members = [acc(m.predict(xt, verbose=0)) for m in snap.ensemble.members]
    ensemble_probs = snap.ensemble.predict(xt, verbose=0)
    # Independent average of the members' class distributions.
    np.testing.assert_allclose(
        ensemble_probs, np.mean([m.predict(xt, verbose=0) for m in snap.ensemble.members], 0),
        atol=1e-6)
    assert acc(ensemble_probs) >= max(members), (acc(ensemble_probs), members)
    assert max(members) > 0.9

    # Loadable later from the directory, in this and in a fresh process.
    again = Ensemble.load(tmp_path / "snaps")
    np.testing.assert_allclose(again.predict(xt, verbose=0), ensemble_probs, atol=1e-6)
    path = tmp_path / "ensemble.keras"
    snap.ensemble.save(path)
    (fresh,) = fresh_process_predict([path], [xt[:50]], tmp_path)
    np.testing.assert_allclose(fresh, ensemble_probs[:50], atol=1e-6)
    assert_saved_model_roundtrip(snap.ensemble, xt[:50], tmp_path)


def test_ensemble_weights_logits_and_errors():
    keras.utils.set_random_seed(3)
    members = [keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]) for _ in range(2)]
    x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    ens = Ensemble(members, from_logits=True, weights=[1.0, 3.0])

    def softmax(z):
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    out = [keras.ops.convert_to_numpy(m(x)) for m in members]
    expected = (softmax(out[0]) + 3 * softmax(out[1])) / 4
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ens(x)), expected, rtol=1e-5)
    with pytest.raises(ValueError, match="members"):
        Ensemble([])
    with pytest.raises(TypeError, match=r"members\[1\]"):
        Ensemble([members[0], "model"])
    with pytest.raises(ValueError, match="weights"):
        Ensemble(members, weights=[1.0])
    with pytest.raises(ValueError, match="directory"):
        Ensemble.load("/nonexistent/dir")


def test_snapshot_rejects_and_config(tmp_path):
    with pytest.raises(ValueError, match="total_epochs=2"):
        SnapshotEnsemble(cycles=3, total_epochs=2, directory=tmp_path)
    with pytest.raises(ValueError, match="cycles=0"):
        SnapshotEnsemble(cycles=0, total_epochs=2, directory=tmp_path)
    with pytest.raises(ValueError, match="initial_learning_rate=0.0"):
        SnapshotEnsemble(cycles=1, total_epochs=2, directory=tmp_path, initial_learning_rate=0.0)
    assert_config_roundtrip(SnapshotEnsemble(cycles=2, total_epochs=8, directory=str(tmp_path),
                                             initial_learning_rate=0.05))
