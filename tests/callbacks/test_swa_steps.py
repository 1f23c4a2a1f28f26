"""SWA at step granularity, `swap_weights()` and `AverageModelCheckpoint`
(TensorFlow Addons' `SWA(average_period=...)` and `AverageModelCheckpoint`),
checked against a NumPy running average of the weights recorded at every step."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from kerastoolkit.callbacks import SWA, AverageModelCheckpoint
from tests.callbacks._util import digits, small_cnn
from tests.callbacks.test_batchnorm_swa import bn_stats, np_precise_stats
from tests.conftest import requires_tensorflow
from tests.harness import assert_config_roundtrip, subprocess_env

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class StepWeights(keras.callbacks.Callback):
    """The trainable weights after every step, as float64 arrays."""

    def __init__(self):
        super().__init__()
        self.after = []

    def on_train_batch_end(self, batch, logs=None):
        if keras.backend.backend() == "jax":
            self.model.jax_state_sync()
        self.after.append([np.array(keras.ops.convert_to_numpy(w), "float64")
                           for w in self.model.trainable_weights])


def np_average(weights, steps):
    """Izmailov et al.'s average of the weights after the given (1-based) steps."""
    return [np.mean([weights[s - 1][i] for s in steps], axis=0) for i in range(len(weights[0]))]


def mlp(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy")
    return model


def mlp_data():
    (x, y), _ = digits()
    return x[:160].reshape(160, -1), y[:160]  # 5 steps of 32


def test_average_period_averages_every_n_steps_from_start_epoch():
    x, y = mlp_data()
    model, steps = mlp(), StepWeights()
    swa = SWA(start_epoch=1, average_period=3)
    hist = model.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0, callbacks=[steps, swa])
    # Epoch 1 starts after step 5: averaged after its steps 3, 6 and 9 (one of
    # them in epoch 2), i.e. the run's steps 8, 11 and 14.
    assert hist.history["swa_count"] == [0, 1, 3]
    for got, want in zip(model.trainable_weights, np_average(steps.after, [8, 11, 14])):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(got), want, rtol=1e-5, atol=1e-6)
    assert swa.swap_weights() is False  # the trained weights back: those after the last step
    for got, want in zip(model.trainable_weights, steps.after[-1]):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(got), want, rtol=1e-6)
    assert swa.swap_weights() is True  # and the average again
    for got, want in zip(model.trainable_weights, np_average(steps.after, [8, 11, 14])):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(got), want, rtol=1e-5, atol=1e-6)


def test_average_period_of_one_epoch_is_frequency_one():
    x, y = mlp_data()
    ends = []
    for kwargs in ({"average_period": 5}, {"frequency": 1}):
        model = mlp()
        model.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0,
                  callbacks=[SWA(start_epoch=1, **kwargs)])
        ends.append(model.get_weights())
    for a, b in zip(*ends):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.fixture(scope="module")
def checkpointed(tmp_path_factory):
    """A BatchNorm model trained with SWA(average_period=4) and
    AverageModelCheckpoint, and the same run without the checkpoint."""
    (x, y), _ = digits()
    x, y = x[:256], y[:256]  # 8 steps of 32 per epoch
    folder = tmp_path_factory.mktemp("avg")
    runs = {}
    for name in ("checkpoint", "plain"):
        model = small_cnn()
        model.compile(keras.optimizers.SGD(0.05, momentum=0.9), "sparse_categorical_crossentropy")
        steps = StepWeights()
        swa = SWA(start_epoch=1, average_period=4, data=x, num_batches=4, batch_size=64)
        callbacks = [steps, swa]
        if name == "checkpoint":
            callbacks.append(AverageModelCheckpoint(swa, str(folder / "avg_{epoch}.keras")))
        model.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0, callbacks=callbacks)
        runs[name] = (model, steps.after, swa)
    return x, folder, runs


def test_average_model_checkpoint_saves_the_average_with_its_batchnorm_statistics(checkpointed):
    x, folder, runs = checkpointed
    _, after, _ = runs["checkpoint"]
    assert sorted(os.listdir(folder)) == ["avg_2.keras", "avg_3.keras"]  # from epoch 1 on
    # Epoch 1 is steps 9..16: averages after steps 12 and 16; epoch 2 adds 20 and 24.
    for epoch, averaged in ((2, [12, 16]), (3, [12, 16, 20, 24])):
        saved = keras.saving.load_model(folder / f"avg_{epoch}.keras")
        for got, want in zip(saved.trainable_weights, np_average(after, averaged)):
            np.testing.assert_allclose(keras.ops.convert_to_numpy(got), want, rtol=1e-5, atol=1e-6)
        mean, var = np_precise_stats(saved, x, 4, 64)  # of the averaged weights
        np.testing.assert_allclose(bn_stats(saved)[0], mean, atol=1e-5)
        np.testing.assert_allclose(bn_stats(saved)[1], var, rtol=1e-5, atol=1e-5)


def test_average_model_checkpoint_leaves_training_unchanged(checkpointed):
    _, _, runs = checkpointed
    (model, after, swa), (plain, plain_after, _) = runs["checkpoint"], runs["plain"]
    for a, b in zip(after[-1], plain_after[-1]):  # trained on from the trained weights
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    for a, b in zip(model.get_weights(), plain.get_weights()):  # both end with the average
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    swa.swap_weights()
    for got, want in zip(model.trainable_weights, after[-1]):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(got), want, rtol=1e-6)


def test_bad_arguments_and_combinations(tmp_path):
    with pytest.raises(ValueError, match=r"not both.*frequency=2, average_period=3"):
        SWA(0, frequency=2, average_period=3)
    with pytest.raises(ValueError, match="average_period=0"):
        SWA(0, average_period=0)
    swa = SWA(0, average_period=4)
    with pytest.raises(ValueError, match="save_freq=10"):
        AverageModelCheckpoint(swa, str(tmp_path / "a.keras"), save_freq=10)
    with pytest.raises(TypeError, match="swa="):
        AverageModelCheckpoint("swa", str(tmp_path / "a.keras"))
    with pytest.raises(ValueError, match="nothing yet"):
        swa.set_model(mlp())
        swa.swap_weights()
    (x, y), _ = digits()
    model = small_cnn()
    model.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"BatchNorm.*swa.data=None"):
        model.fit(x[:64], y[:64], batch_size=32, epochs=1, verbose=0,
                  callbacks=[swa, AverageModelCheckpoint(swa, str(tmp_path / "a.keras"))])
    model = mlp()
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy",
                  steps_per_execution=2)
    with pytest.raises(ValueError, match="average_period=3, steps_per_execution=2"):
        model.fit(*mlp_data(), batch_size=32, epochs=1, verbose=0,
                  callbacks=[SWA(0, average_period=3)])
    assert_config_roundtrip(SWA(2, average_period=7, num_batches=3, backup_dir="/tmp/b"))
    rebuilt = assert_config_roundtrip(AverageModelCheckpoint(
        SWA(1, average_period=5), str(tmp_path / "best.keras"), monitor="loss",
        save_best_only=True))
    assert rebuilt.swa.average_period == 5 and rebuilt.save_best_only


@pytest.mark.slow
@requires_tensorflow
def test_average_period_and_swap_under_mirrored_strategy(mirrored_strategy):
    x, y = mlp_data()
    with mirrored_strategy.scope():
        model = mlp()
    steps = StepWeights()
    swa = SWA(start_epoch=0, average_period=2)
    model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0, callbacks=[steps, swa])
    for got, want in zip(model.trainable_weights, np_average(steps.after, [2, 4])):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(got), want, rtol=1e-5, atol=1e-6)
    swa.swap_weights()
    for got, want in zip(model.trainable_weights, steps.after[-1]):
        for replica in got.value.values:  # every replica's copy
            np.testing.assert_allclose(np.asarray(replica), want, rtol=1e-6)


_JAX_CHECK = textwrap.dedent("""
    import os, sys
    import numpy as np
    import keras
    import kerastoolkit as kt
    sys.path.insert(0, os.getcwd())
    from tests.callbacks.test_swa_steps import StepWeights, mlp, mlp_data, np_average
    assert keras.backend.backend() == "jax"
    x, y = mlp_data()
    model, steps = mlp(), StepWeights()
    swa = kt.callbacks.SWA(start_epoch=1, average_period=3)
    checkpoint = kt.callbacks.AverageModelCheckpoint(swa, sys.argv[1])
    model.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0,
              callbacks=[steps, swa, checkpoint])
    average = np_average(steps.after, [8, 11, 14])
    for got, want in zip(model.trainable_weights, average):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)
    saved = keras.saving.load_model(sys.argv[1])
    for got, want in zip(saved.trainable_weights, average):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)
    swa.swap_weights()
    for got, want in zip(model.trainable_weights, steps.after[-1]):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)
    print("jax ok")
""")


@pytest.mark.slow
@pytest.mark.skipif(keras.backend.backend() == "jax", reason="this test starts the JAX run")
def test_average_period_swap_and_checkpoint_on_jax(tmp_path):
    env = subprocess_env()
    env.update(KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", _JAX_CHECK, str(tmp_path / "avg.keras")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "jax ok" in result.stdout, result.stderr[-4000:]
