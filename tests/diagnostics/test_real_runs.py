"""The diagnosis misses of issue 12, each on a real (tiny, seeded) `fit` run.

Every test here failed before the fix: one finding hid another, a repeated
permutation was called "not shuffled", a NaN behind ReLU gave no finding,
per-step losses were wrong for a partial last batch and missing with
`steps_per_execution > 1`, the statistics probe moved BatchNorm's moving
statistics and plotting switched matplotlib's backend.
"""

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

from kerastoolkit.callbacks import LRFinder
from kerastoolkit.diagnostics import CurveDiagnostics
from kerastoolkit.diagnostics import StatisticsRecorder
from kerastoolkit.diagnostics import diagnose
from kerastoolkit.diagnostics import locate_non_finite
from tests.conftest import requires_tensorflow


def digits():
    d = load_digits()
    return (d.data / 16.0 - 0.3).astype("float32"), d.target.astype("int32")


def mlp(*hidden):
    layers = [keras.Input((64,))]
    layers += [keras.layers.Dense(h, activation="relu") for h in hidden or (32,)]
    model = keras.Sequential(layers + [keras.layers.Dense(10)])
    return model


def compile_(model, optimizer, **kwargs):
    model.compile(optimizer=optimizer, **kwargs,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def np_batch_losses(logits, y, sizes):
    """Each batch's mean cross-entropy, in NumPy."""
    z = logits.astype("float64")
    z = z - z.max(axis=1, keepdims=True)
    per = -(z - np.log(np.exp(z).sum(axis=1, keepdims=True)))[np.arange(len(y)), y]
    edges = np.cumsum([0] + list(sizes))
    return np.array([per[a:b].mean() for a, b in zip(edges[:-1], edges[1:])])


@pytest.fixture(scope="module")
def repeated_order_overfitting_run():
    """`fit(numpy, shuffle=True)` after `set_random_seed`: one permutation
    repeated every epoch; 200 examples and a large MLP: overfits badly."""
    x, y = digits()
    keras.utils.set_random_seed(0)
    model = compile_(mlp(256, 256), keras.optimizers.Adam(3e-3))
    cb = CurveDiagnostics()
    history = model.fit(x[:200], y[:200], batch_size=20, epochs=30, shuffle=True,
                        verbose=0, callbacks=[cb], validation_data=(x[1400:], y[1400:]))
    return cb.report, history


@requires_tensorflow
def test_order_problem_does_not_hide_overfitting(repeated_order_overfitting_run):
    report, history = repeated_order_overfitting_run
    assert "overfitting_definite" in report.codes, str(report)
    over = [f for f in report.findings if f.code == "overfitting_definite"][0]
    val = np.asarray(history.history["val_loss"])
    assert over.evidence["best_epoch"] == int(np.argmin(val))
    assert val[-1] > 1.2 * val.min()  # the run really overfits


@requires_tensorflow
def test_repeated_permutation_is_not_called_unshuffled(repeated_order_overfitting_run):
    report, _ = repeated_order_overfitting_run
    assert "repeated_order" in report.codes and "unshuffled" not in report.codes, str(report)
    found = [f for f in report.findings if f.code == "repeated_order"][0]
    # the label sequence repeats exactly, and batches are as mixed as random ones
    assert found.evidence["label_sequence_correlation"] == pytest.approx(1.0)
    assert found.evidence["label_spread_ratio"] < 2.0
    assert "reshuffle_each_iteration=True" in found.advice
    assert "shuffle=True`" not in found.advice.split("(")[0]


@requires_tensorflow
def test_sorted_data_is_unshuffled_from_the_labels():
    x, y = digits()
    order = np.argsort(y[:512], kind="stable")
    keras.utils.set_random_seed(0)
    model = compile_(mlp(), keras.optimizers.Adam(1e-3))
    cb = CurveDiagnostics()
    model.fit(x[:512][order], y[:512][order], batch_size=32, epochs=3, shuffle=False,
              verbose=0, callbacks=[cb])
    assert cb.report.codes == ["unshuffled"], str(cb.report)
    ev = cb.report.findings[0].evidence
    assert ev["pattern"] == "sorted"
    # independent: the spread of the batch mean labels vs that of random batches
    means = y[:512][order].reshape(16, 32).mean(axis=1)
    expected = means.var() / (y[:512].var() / 32)
    assert ev["label_spread_ratio"] == pytest.approx(expected, rel=1e-6)


@requires_tensorflow
def test_nan_pixel_behind_relu_is_a_chance_plateau():
    x, y = digits()
    x = x[:1024].copy()
    x[1000, 10] = np.nan  # one pixel of one example, in the last batch of epoch 0
    keras.utils.set_random_seed(0)
    # A ReLU that maps NaN to 0, as oneDNN's does on Intel CPUs; on other CPUs
    # (AMD EPYC) TensorFlow's ReLU passes NaN on and the run fails loudly.
    model = keras.Sequential([keras.Input((64,)),
                              keras.layers.Dense(32, activation=lambda t: keras.ops.where(t > 0, t, 0.0)),
                              keras.layers.Dense(10)])
    model = compile_(model, keras.optimizers.Adam(3e-3))
    cb = CurveDiagnostics()
    history = model.fit(x, y[:1024], batch_size=32, epochs=5, shuffle=False, verbose=0,
                        callbacks=[cb])
    loss = np.asarray(history.history["loss"])
    assert np.all(np.isfinite(loss))  # the NaN check cannot see it
    assert cb.report.codes == ["chance_plateau"], str(cb.report)
    ev = cb.report.findings[0].evidence
    assert ev["chance_classes"] == 10
    assert ev["level"] == pytest.approx(np.log(10), rel=2e-3)
    first = model.layers[0]
    assert f"{first.name}/{first.kernel.name}" in ev["non_finite_weights"]
    assert "ReLU" in cb.report.findings[0].advice


@requires_tensorflow
@pytest.mark.parametrize("steps_per_execution", [1, 3])
def test_step_losses_exact_with_partial_batch_and_steps_per_execution(steps_per_execution):
    x, y = digits()
    x, y = x[:200], y[:200]  # batches of 32 x 6 and a partial one of 8
    model = compile_(mlp(), keras.optimizers.SGD(0.0),
                     steps_per_execution=steps_per_execution)
    cb = CurveDiagnostics()
    model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0, callbacks=[cb])
    losses, epochs, batches = cb.step_losses()
    logits = keras.ops.convert_to_numpy(model(x))
    expected = np_batch_losses(logits, y, [32] * 6 + [8])
    np.testing.assert_allclose(losses, np.tile(expected, 2), rtol=1e-5)
    assert batches.tolist() == list(range(7)) * 2 and epochs.tolist() == [0] * 7 + [1] * 7
    assert "train_step" not in vars(model)  # the recorder is gone


@requires_tensorflow
def test_lr_finder_losses_exact_for_a_partial_batch():
    x, y = digits()
    x, y = x[:100], y[:100]  # batches of 32, 32, 32 and 4
    keras.utils.set_random_seed(1)
    model = compile_(mlp(), keras.optimizers.SGD(0.1))
    logits = keras.ops.convert_to_numpy(model(x))
    # rates so small that the weights stay put to float32 precision
    finder = LRFinder(min_lr=1e-12, max_lr=2e-12, num_steps=4, smoothing=0.0)
    model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0, callbacks=[finder])
    np.testing.assert_allclose(finder.losses, np_batch_losses(logits, y, [32, 32, 32, 4]),
                               rtol=1e-5)


@requires_tensorflow
def test_lr_finder_suggests_a_rate_below_the_analytic_stability_limit():
    # L(w) = (a·w)^2 with SGD: w <- w(1 - 2a^2·lr); the loss falls only while
    # lr < 1/a^2 and explodes above it. The sweep must stop after crossing
    # 1/a^2 and both suggestions must lie below it, where the loss falls.
    a = 2.0
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(
        1, use_bias=False, kernel_initializer="ones")])
    model.compile(keras.optimizers.SGD(0.01), "mse")
    x = np.full((64, 1), a, "float32")
    finder = LRFinder(min_lr=1e-4, max_lr=10.0, num_steps=64, smoothing=0.5)
    model.fit(x, np.zeros((64, 1), "float32"), batch_size=1, epochs=1, shuffle=False,
              verbose=0, callbacks=[finder])
    limit = 1.0 / a**2
    assert len(finder.losses) < 64  # it stopped on the explosion
    assert finder.learning_rates[-1] > limit
    assert finder.suggestion < limit and finder.steepest < limit
    # the loss fell between the start and the suggestion
    i = int(np.argmin(np.abs(np.asarray(finder.learning_rates) - finder.suggestion)))
    assert finder.losses[i] < finder.losses[0]


def _every_variable(model):
    """Every variable a probe could touch: weights (trainable or not), seeds, optimizer state."""
    variables = list(model.variables)
    if model.optimizer is not None:
        variables += list(model.optimizer.variables)
    return {v.path: np.array(keras.ops.convert_to_numpy(v)) for v in variables}


def test_statistics_probe_and_locate_leave_every_variable_as_it_was():
    x, y = digits()
    keras.utils.set_random_seed(0)
    model = compile_(keras.Sequential([
        keras.Input((64,)), keras.layers.Dense(32), keras.layers.BatchNormalization(),
        keras.layers.Activation("relu"), keras.layers.Dropout(0.3), keras.layers.Dense(10),
    ]), keras.optimizers.Adam(1e-3))
    model.fit(x[:64], y[:64], batch_size=32, epochs=1, verbose=0)  # optimizer state to keep too
    before = _every_variable(model)
    StatisticsRecorder(model, (x[:64] + 3.0, y[:64])).record(0)  # shifted: BN would move
    locate_non_finite(model, (x[:64] + 3.0, y[:64]))
    after = _every_variable(model)
    assert set(after) == set(before)
    kinds = {"kernel", "gamma", "moving_mean", "seed_generator_state", "iteration"}
    assert kinds <= {path.rsplit("/", 1)[-1] for path in before}, sorted(before)
    for path, value in before.items():
        np.testing.assert_array_equal(after[path], value, err_msg=path)


def test_plots_keep_the_matplotlib_backend_and_have_integer_epoch_ticks(tmp_path, monkeypatch):
    import matplotlib

    from kerastoolkit.diagnostics import plots

    matplotlib.use("pdf")  # a user's non-Agg backend
    figures = []
    real_save = plots.save_figure

    def spy(fig, path, title=None):
        figures.append(fig)
        return real_save(fig, path, title)

    monkeypatch.setattr(plots, "save_figure", spy)
    loss = list(np.linspace(2.0, 0.5, 8))
    report = diagnose({"loss": loss, "val_loss": [v + 0.1 for v in loss]})
    report.plot(str(tmp_path / "r.png"))
    plots.plot_history({"loss": loss}, str(tmp_path / "h.png"))
    assert matplotlib.get_backend().lower() == "pdf"
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []
    for fig in figures:
        ax = [a for a in fig.axes if a.get_xlabel() == "epoch"][0]
        lo, hi = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert ticks and all(float(t).is_integer() for t in ticks)
        xdata = ax.get_lines()[0].get_xdata()
        assert list(xdata) == list(range(8))  # epochs 0..7, as in epochs.csv


def test_keras_compat_pieces_still_match_keras():
    from kerastoolkit import _keras_compat

    x, y = digits()
    model = compile_(mlp(), keras.optimizers.SGD(0.0))
    total, count = _keras_compat.loss_tracker_variables(model)
    model.reset_metrics()
    loss = model.train_on_batch(x[:10], y[:10])
    loss = float(np.ravel(loss)[0])
    # the tracker holds sum(batch loss x batch size) and the examples seen
    assert float(keras.ops.convert_to_numpy(count)) == 10.0
    assert float(keras.ops.convert_to_numpy(total)) == pytest.approx(10 * loss, rel=1e-6)
    keras.random.uniform((1,))  # the global generator exists
    state = _keras_compat.global_seed_state()
    keras.random.uniform((2,))  # advances the global generator
    assert not np.array_equal(_keras_compat.global_seed_state(), state)
    _keras_compat.set_global_seed_state(state)
    np.testing.assert_array_equal(_keras_compat.global_seed_state(), state)
    a = keras.ops.convert_to_numpy(keras.random.uniform((3,)))
    _keras_compat.set_global_seed_state(state)
    b = keras.ops.convert_to_numpy(keras.random.uniform((3,)))
    np.testing.assert_array_equal(a, b)
