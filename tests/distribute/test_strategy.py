"""Strategy selection, the chief, per-worker paths, and the multi-worker compat guard."""

import json
import logging
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import kerastoolkit as kt
from kerastoolkit import _keras_compat
from kerastoolkit.distribute import cluster
from kerastoolkit.distribute import strategies as strategy_lib
from tests.conftest import requires_tensorflow


def _tf_config(monkeypatch, cluster_spec, task_type, index):
    monkeypatch.setenv("TF_CONFIG", json.dumps(
        {"cluster": cluster_spec, "task": {"type": task_type, "index": index}}))


TWO = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
WITH_CHIEF = {"chief": ["127.0.0.1:0"], "worker": ["127.0.0.1:1"]}


@pytest.mark.parametrize("spec, task_type, index, chief", [
    (TWO, "worker", 0, True),
    (TWO, "worker", 1, False),
    (WITH_CHIEF, "chief", 0, True),
    (WITH_CHIEF, "worker", 0, False),
    ({**TWO, "evaluator": ["127.0.0.1:3"]}, "evaluator", 0, False),
])
def test_is_chief(monkeypatch, spec, task_type, index, chief):
    _tf_config(monkeypatch, spec, task_type, index)
    assert kt.distribute.is_chief() is chief
    assert kt.distribute.task() == (task_type, index)
    assert kt.distribute.num_workers() == 2


def test_alone_is_chief_and_paths_unchanged(monkeypatch, tmp_path):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert kt.distribute.is_chief() and kt.distribute.num_workers() == 1
    assert kt.distribute.chief_path(tmp_path / "a") == str(tmp_path / "a")
    assert kt.distribute.worker_backup_dir(tmp_path) == str(tmp_path)
    assert kt.distribute.chief_path(None) is None


def test_bad_tf_config(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="Received: TF_CONFIG="):
        kt.distribute.is_chief()


def test_non_chief_paths_and_backup_dirs(monkeypatch, tmp_path):
    _tf_config(monkeypatch, TWO, "worker", 1)
    a = kt.distribute.chief_path(tmp_path / "snaps")
    assert not a.startswith(str(tmp_path)) and os.path.basename(a) == "snaps"
    assert kt.distribute.chief_path(str(tmp_path / "snaps")) == a  # stable
    assert kt.distribute.chief_path(tmp_path / "other" / "snaps") != a  # no collision
    assert kt.distribute.worker_backup_dir(tmp_path) == str(tmp_path / "worker-1")
    root = cluster._WORKER_TEMP[0]
    with open(kt.distribute.chief_path(tmp_path / "model.keras"), "w"):
        pass  # a file path is writable at once
    os.makedirs(a)
    # A path already mapped (or inside one) stays: the CLI maps `--out`, the
    # callbacks then map their folders inside it again.
    assert kt.distribute.chief_path(a) == a
    assert kt.distribute.chief_path(os.path.join(a, "diagnostics")) == os.path.join(a, "diagnostics")
    kt.distribute.remove_worker_files()
    assert not os.path.exists(root) and cluster._WORKER_TEMP == []
    with pytest.raises(TypeError, match="Received: backup_dir=None"):
        kt.distribute.worker_backup_dir(None)


def test_worker_temp_folder_removed_when_process_exits(tmp_path):
    """Pure Python: the module runs without Keras or TensorFlow."""
    code = (
        "import importlib.util, sys, os\n"
        f"spec = importlib.util.spec_from_file_location('c', {cluster.__file__!r})\n"
        "c = importlib.util.module_from_spec(spec); spec.loader.exec_module(c)\n"
        "p = c.chief_path('x/snaps'); os.makedirs(p)\n"
        "open(os.path.join(p, 'f'), 'w').close(); print(c._WORKER_TEMP[0])\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    env = dict(os.environ, TF_CONFIG=json.dumps(
        {"cluster": TWO, "task": {"type": "worker", "index": 1}}))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=60, check=True).stdout.strip()
    assert out.startswith(os.path.join(os.path.dirname(out), "kerastoolkit-worker1-pid"))
    assert not os.path.exists(out)
    # A folder left by a killed worker (its pid no longer runs) is removed by the next.
    import tempfile

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = tempfile.mkdtemp(prefix=f"kerastoolkit-worker1-pid{dead}-")
    subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                   timeout=60, check=True)
    assert not os.path.exists(stale)


@requires_tensorflow
def test_strategy_default_on_one_cpu(monkeypatch, caplog, capsys):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    import tensorflow as tf

    with caplog.at_level(logging.INFO, logger="kerastoolkit.distribute"):
        s = kt.distribute.strategy()
    assert s is tf.distribute.get_strategy() and s.num_replicas_in_sync == 1
    assert "_DefaultDistributionStrategy" in caplog.text and "1 replica" in caplog.text
    assert "1 replica" in capsys.readouterr().out
    kt.distribute.strategy("none", verbose=0)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("tpu, workers, gpus, expected", [
    (True, 2, 4, "tpu"), (False, 2, 4, "multi_worker"), (False, 1, 2, "mirrored"),
    (False, 1, 1, "none"), (False, 1, 0, "none"),
])
def test_auto_choice(monkeypatch, tpu, workers, gpus, expected):
    monkeypatch.setattr(strategy_lib, "_tpu_present", lambda: tpu)
    monkeypatch.setattr(strategy_lib, "_gpu_count", lambda: gpus)
    monkeypatch.setattr(strategy_lib.cluster, "num_workers", lambda: workers)
    assert strategy_lib._choose("auto") == expected
    assert strategy_lib._choose("mirrored") == "mirrored"


@requires_tensorflow
def test_strategy_bad_arguments(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="Received: kind='gpu'"):
        kt.distribute.strategy("gpu")
    with pytest.raises(ValueError, match="Received: verbose=2"):
        kt.distribute.strategy(verbose=2)
    with pytest.raises(RuntimeError, match="TF_CONFIG"):
        kt.distribute.strategy("multi_worker")


def test_scale_learning_rate_reexported():
    scaling = pytest.importorskip("kerastoolkit.distribute.scaling")
    assert kt.distribute.scale_learning_rate is scaling.scale_learning_rate


# --- the compatibility code for keras-team/keras#20585 -------------------------


@requires_tensorflow
def test_keras_internals_unchanged():
    """Fails when a Keras upgrade changes the code the multi-worker fix replaces."""
    assert keras.__version__.startswith(_keras_compat.MULTI_WORKER_KERAS_VERSIONS)
    assert _keras_compat.multi_worker_fingerprints() == _keras_compat.MULTI_WORKER_FINGERPRINTS
    from keras.src.backend.tensorflow import trainer

    # The call the fix changes is still there, as the fix describes it.
    import inspect

    assert 'strategy.reduce("MEAN", v, axis=0)' in inspect.getsource(trainer.reduce_per_replica)
    assert "self.distribute_strategy.reduce(" in inspect.getsource(
        trainer.TensorFlowTrainer._maybe_symbolic_build)


@requires_tensorflow
def test_fix_warns_on_other_keras_versions_and_refuses_changed_internals(monkeypatch):
    _keras_compat.disable_multi_worker_fit()
    # An unverified Keras: warned once, refused only where the internals changed
    # (the one policy of _keras_compat; tests/test_keras_compat.py).
    monkeypatch.setattr(_keras_compat, "_WARNED_VERSIONS", set())
    monkeypatch.setattr(keras, "__version__", "3.16.0")
    with pytest.warns(_keras_compat.UnverifiedKerasWarning, match=r"verified on Keras 3\.15\.x; this is Keras 3\.16\.0"):
        _keras_compat.check_multi_worker_keras()
    monkeypatch.undo()
    monkeypatch.setitem(_keras_compat.MULTI_WORKER_FINGERPRINTS, "reduce_per_replica", "0" * 16)
    with pytest.raises(RuntimeError, match="have changed"):
        kt.distribute.enable_multi_worker()
    assert not _keras_compat.multi_worker_fit_enabled()


@requires_tensorflow
def test_enable_disable_and_single_worker_unchanged(mirrored_strategy):
    from keras.src.backend.tensorflow import trainer

    original = (trainer.TensorFlowTrainer._maybe_symbolic_build, trainer.reduce_per_replica)
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    y = x @ np.arange(1, 5, dtype="float32")[:, None]

    def fit():
        keras.utils.set_random_seed(1)
        with mirrored_strategy.scope():
            model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
            model.compile(keras.optimizers.SGD(0.05), "mse")
        hist = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        return model.get_weights(), hist.history["loss"]

    plain = fit()
    try:
        kt.distribute.enable_multi_worker()
        kt.distribute.enable_multi_worker()  # idempotent
        assert trainer.reduce_per_replica.__kerastoolkit_fix__ == "keras-team/keras#20585"
        assert _keras_compat.multi_worker_fingerprints() == _keras_compat.MULTI_WORKER_FINGERPRINTS
        fixed = fit()
    finally:
        kt.distribute.disable_multi_worker()
    assert (trainer.TensorFlowTrainer._maybe_symbolic_build, trainer.reduce_per_replica) == original
    for a, b in zip(plain[0], fixed[0]):
        np.testing.assert_array_equal(a, b)
    assert plain[1] == fixed[1]


@requires_tensorflow
def test_export_on_a_non_chief_goes_to_its_temporary_folder(monkeypatch, tmp_path):
    _tf_config(monkeypatch, TWO, "worker", 1)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    path = kt.export.saved_model(model, tmp_path / "savedmodels")
    assert not (tmp_path / "savedmodels").exists()
    assert path.startswith(cluster._WORKER_TEMP[0]) and os.path.isdir(path)
    kt.distribute.remove_worker_files()
    _tf_config(monkeypatch, TWO, "worker", 0)  # the chief writes where it is asked
    assert kt.export.saved_model(model, tmp_path / "savedmodels") == str(
        tmp_path / "savedmodels" / "1")


@requires_tensorflow
def test_datasets_shard_by_data_and_need_a_seed_in_a_cluster(monkeypatch):
    """A prepared split is one file, which FILE sharding cannot split between
    two workers; an unseeded shuffle would give each worker its own order."""
    import tensorflow as tf

    dataset = kt.data.load("digits", "test", batch_size=32)
    assert (dataset.options().experimental_distribute.auto_shard_policy
            == tf.data.experimental.AutoShardPolicy.DATA)
    _tf_config(monkeypatch, TWO, "worker", 1)
    with pytest.raises(ValueError, match="Pass the same `seed` on every worker. Received: seed=None"):
        kt.data.load("digits", "train", batch_size=32)
    with pytest.raises(ValueError, match="Received: seed=None"):
        kt.data.load("digits", "train", as_numpy=True, shuffle=True)  # a permutation too
    kt.data.load("digits", "train", as_numpy=True)  # in the split's order: fine
    kt.data.load("digits", "train", batch_size=32, seed=0)  # seeded: fine
    kt.data.load("digits", "test", batch_size=32)  # not shuffled: fine
