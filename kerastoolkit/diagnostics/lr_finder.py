"""`LRFinder` and `find_learning_rate`: the learning-rate range test."""

import math

import keras
import numpy as np

from kerastoolkit import _keras_compat
from kerastoolkit import _callback_common as _common
from kerastoolkit.diagnostics.plots import new_figure
from kerastoolkit.diagnostics.plots import save_figure
from kerastoolkit.diagnostics.recorder import StepRecorder


@keras.saving.register_keras_serializable(package="kerastoolkit")
class LRFinder(keras.callbacks.Callback):
    """The learning-rate range test (Smith 2017), restoring the model afterwards.

    During at most one epoch the learning rate grows exponentially from
    `min_lr` to `max_lr` over `N = num_steps` steps,

    ```
    lr(i) = min_lr · (max_lr / min_lr) ** (i / (N − 1)),     i = 0 … N−1
    ```

    and the loss of each batch is recorded (the batch's own loss, recorded
    in the train step on TensorFlow with one replica, exact for a partial
    batch and with `steps_per_execution > 1`, where one point is the mean
    loss of the steps run at one rate; elsewhere recovered from Keras's
    running mean `m_i` as `(i+1)·m_i − i·m_(i−1)`). The loss is
    smoothed with an exponential moving average with bias correction,
    `s_i = (β·a_(i−1) + (1−β)·ℓ_i) / (1 − β^(i+1))`; the sweep stops early
    once `s_i > divergence_threshold · min_j s_j` (the loss exploded; for
    negative losses the same margin, `min_j s_j + (threshold − 1)·|min_j s_j|`).

    When training ends the model weights, the optimizer variables (step
    counter, momenta...) and the optimizer's learning rate are put back
    exactly as they were: the test leaves no trace.

    Suggestions (as fastai's `lr_find`):
    - `steepest`: the rate where the smoothed loss falls fastest,
      `argmin_i d s_i / d log lr_i`;
    - `valley`: the rate a third of the way into the longest descending
      stretch of the smoothed loss (fastai's default);
    - `suggestion`: `valley`.

    `kt.callbacks.find_learning_rate(model, x, y)` runs the test for you.

    Args:
        min_lr: float > 0, the first rate. Defaults to `1e-7`.
        max_lr: float > `min_lr`, the last rate. Defaults to `10.0`.
        num_steps: int >= 2, `N`, the sweep length, capped at one epoch.
            Defaults to `100`.
        smoothing: float in [0, 1), `β` of the moving average. Defaults to `0.98`.
        divergence_threshold: float > 1, the stop rule's factor. Defaults to `4.0`.

    Raises:
        ValueError: for rates that are not positive or out of order, or other
            values out of range.
        TypeError: for values of the wrong type.

    Example:

    ```python
    finder = kt.callbacks.find_learning_rate(model, x_train, y_train, batch_size=64)
    finder.suggestion, finder.steepest
    finder.plot("lr_find.png")
    ```

    References:
        - [Smith, 2017](https://arxiv.org/abs/1506.01186), "Cyclical Learning
          Rates for Training Neural Networks", Section 3.3.
    """

    def __init__(
        self,
        min_lr=1e-7,
        max_lr=10.0,
        num_steps=100,
        smoothing=0.98,
        divergence_threshold=4.0,
    ):
        super().__init__()
        self.min_lr = _common.check_float("min_lr", min_lr)
        if self.min_lr <= 0:
            raise ValueError(f"Argument `min_lr` must be > 0. Received: min_lr={min_lr}")
        self.max_lr = _common.check_float("max_lr", max_lr)
        if self.max_lr <= self.min_lr:
            raise ValueError(
                f"Argument `max_lr` must be larger than `min_lr` ({self.min_lr}). "
                f"Received: max_lr={max_lr}"
            )
        self.num_steps = _common.check_int("num_steps", num_steps, 2)
        self.smoothing = _common.check_float("smoothing", smoothing, 0.0, 0.999999)
        self.divergence_threshold = _common.check_float(
            "divergence_threshold", divergence_threshold
        )
        if self.divergence_threshold <= 1.0:
            raise ValueError(
                "Argument `divergence_threshold` must be > 1. "
                f"Received: divergence_threshold={divergence_threshold}"
            )
        self.learning_rates = []
        self.losses = []
        self.smoothed_losses = []

    # --- the sweep -------------------------------------------------------
    def _rate(self, i):
        n = self._n
        return self.min_lr * (self.max_lr / self.min_lr) ** (i / (n - 1))

    def on_train_begin(self, logs=None):
        model = self.model
        optimizer = _common.check_optimizer(self, model)
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        steps = (self.params or {}).get("steps")
        self._n = min(self.num_steps, int(steps)) if steps else self.num_steps
        self._weights = [np.array(w, copy=True) for w in model.get_weights()]
        outer = model.optimizer  # wrappers' own state too (Lookahead, GradientNoise...)
        if not outer.built:
            outer.build(model.trainable_variables)
        self._opt_values = [
            np.array(keras.ops.convert_to_numpy(v), copy=True) for v in outer.variables
        ]
        self._lr_obj = _keras_compat.learning_rate_object(optimizer)
        self._was_variable = isinstance(self._lr_obj, keras.Variable)
        if not self._was_variable:
            # A schedule: sweep with a constant variable-backed stand-in.
            self._sweep_var = keras.Variable(
                self.min_lr, dtype="float32", trainable=False, name="lr_sweep"
            )
            optimizer.learning_rate = _SweepRate(self._sweep_var)
            _common.retrace(model)
        else:
            self._sweep_var = self._lr_obj
        self.learning_rates, self.losses, self.smoothed_losses = [], [], []
        self._avg, self._prev_mean, self._best = 0.0, 0.0, math.inf
        self._i = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._prev_mean = 0.0

    def on_train_batch_begin(self, batch, logs=None):
        jax = keras.backend.backend() == "jax"
        if jax:  # JAX keeps the step's state outside the variables: write it back
            self.model.jax_state_sync()
        self._sweep_var.assign(self._rate(self._i))
        # `jax_state_sync` marked the state synced: the next step reads the
        # variables again, the new rate included.
        if jax and not self._was_variable:
            _common.retrace(self.model)

    def set_model(self, model):
        super().set_model(model)
        # Each batch's own loss, exactly (partial batches, steps_per_execution).
        self._recorder = StepRecorder()
        if not self._recorder.install(model):
            self._recorder = None

    def on_train_batch_end(self, batch, logs=None):
        mean = float(np.asarray(logs["loss"]))
        recorder = getattr(self, "_recorder", None)
        drained = recorder.drain() if recorder is not None else None
        if drained is not None and len(drained["loss"]):
            # the steps run since the last call, all at this rate
            loss = float(np.sum(drained["loss"] * drained["size"]) / np.sum(drained["size"]))
        else:  # other backends: from the running mean, assuming equal batches
            loss = (batch + 1) * mean - batch * self._prev_mean
        self._prev_mean = mean
        beta = self.smoothing
        self._avg = beta * self._avg + (1 - beta) * loss
        smooth = self._avg / (1 - beta ** (self._i + 1))
        self.learning_rates.append(self._rate(self._i))
        self.losses.append(loss)
        self.smoothed_losses.append(smooth)
        self._i += 1
        self._best = min(self._best, smooth)
        if (
            not math.isfinite(loss)
            or self._exploded(smooth, self._best)
            or self._i >= self._n
        ):
            self.model.stop_training = True

    def _exploded(self, smooth, best):
        # `s > threshold * best` for positive losses, by the same margin otherwise.
        return smooth > best + (self.divergence_threshold - 1.0) * abs(best)

    def on_train_end(self, logs=None):
        model = self.model
        if getattr(self, "_recorder", None) is not None:
            self._recorder.uninstall()
            self._recorder = None
        optimizer = _common.check_optimizer(self, model)
        if keras.backend.backend() == "jax":
            model.jax_state_sync()
        if not self._was_variable:
            optimizer.learning_rate = self._lr_obj
            _common.retrace(model)
        model.set_weights(self._weights)
        for variable, value in zip(model.optimizer.variables, self._opt_values):
            variable.assign(value)

    # --- results ---------------------------------------------------------
    def _usable(self):
        """Points up to the minimum's explosion (finite losses only)."""
        lrs = np.asarray(self.learning_rates, "float64")
        smooth = np.asarray(self.smoothed_losses, "float64")
        keep = np.isfinite(smooth)
        lrs, smooth = lrs[keep], smooth[keep]
        if len(smooth) and self._exploded(smooth[-1], smooth.min()):
            lrs, smooth = lrs[:-1], smooth[:-1]
        if len(lrs) < 3:
            raise ValueError(
                "The range test recorded fewer than 3 usable steps; lower "
                "`min_lr` or raise `num_steps`. "
                f"Received: num_steps={self.num_steps}, recorded={len(self.learning_rates)}"
            )
        return lrs, smooth

    @property
    def steepest(self):
        """The rate of steepest descent of the smoothed loss (vs log lr)."""
        lrs, smooth = self._usable()
        return float(lrs[int(np.argmin(np.gradient(smooth, np.log(lrs))))])

    @property
    def valley(self):
        """fastai's "valley": a third into the longest decreasing stretch."""
        lrs, smooth = self._usable()
        n = len(smooth)
        lds = [1] * n
        max_start = max_end = 0
        for i in range(1, n):
            for j in range(i):
                if smooth[i] < smooth[j] and lds[i] < lds[j] + 1:
                    lds[i] = lds[j] + 1
                if lds[max_end] < lds[i]:
                    max_end = i
                    max_start = max_end - lds[max_end]
        sections = (max_end - max_start) / 3
        return float(lrs[max_start + int(sections) + int(sections / 2)])

    @property
    def suggestion(self):
        """The suggested rate (`valley`)."""
        return self.valley

    def plot(self, path, title=None):
        """Saves loss vs learning rate (log scale) with the suggestions as a PNG.

        Args:
            path: the PNG file to write.
            title: figure title. Defaults to `None`.

        Returns:
            `path`.
        """
        fig = new_figure(figsize=(6, 4))
        ax = fig.add_subplot()
        ax.plot(self.learning_rates, self.losses, alpha=0.3, label="batch loss")
        ax.plot(self.learning_rates, self.smoothed_losses, label="smoothed")
        for name, value, style in (("valley", self.valley, "--"), ("steepest", self.steepest, ":")):
            ax.axvline(value, linestyle=style, color="k", label=f"{name} {value:.2e}")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        finite = [v for v in self.smoothed_losses if math.isfinite(v)]
        if finite:
            ax.set_ylim(min(finite) * 0.9, min(max(finite), 4 * min(finite)) * 1.1)
        ax.legend()
        return save_figure(fig, path, title)

    def get_config(self):
        return {
            "min_lr": self.min_lr,
            "max_lr": self.max_lr,
            "num_steps": self.num_steps,
            "smoothing": self.smoothing,
            "divergence_threshold": self.divergence_threshold,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class _SweepRate(keras.optimizers.schedules.LearningRateSchedule):
    """A constant rate read from a variable (stands in for a schedule during the sweep)."""

    def __init__(self, variable):
        super().__init__()
        self.variable = variable

    def __call__(self, step):
        return keras.ops.convert_to_tensor(self.variable)

    def get_config(self):
        return {"value": float(keras.ops.convert_to_numpy(self.variable))}


def find_learning_rate(
    model,
    x,
    y=None,
    batch_size=None,
    min_lr=1e-7,
    max_lr=10.0,
    num_steps=100,
    smoothing=0.98,
    divergence_threshold=4.0,
    plot_path=None,
):
    """Runs the learning-rate range test on a compiled model and restores it.

    One `model.fit` epoch (at most `num_steps` steps) with an `LRFinder`;
    afterwards the weights and optimizer state are exactly those before.

    Args:
        model: a compiled Keras model.
        x: training inputs, or a `tf.data.Dataset` / `PyDataset` of `(x, y)`.
        y: targets, when `x` is an array. Defaults to `None`.
        batch_size: batch size for array inputs. Defaults to `None` (32).
        min_lr: see `LRFinder`. Defaults to `1e-7`.
        max_lr: see `LRFinder`. Defaults to `10.0`.
        num_steps: see `LRFinder`. Defaults to `100`.
        smoothing: see `LRFinder`. Defaults to `0.98`.
        divergence_threshold: see `LRFinder`. Defaults to `4.0`.
        plot_path: a PNG path for the loss-vs-rate plot, or `None`.
            Defaults to `None`.

    Returns:
        The `LRFinder`, with `learning_rates`, `losses`, `smoothed_losses`,
        `suggestion`, `steepest` and `valley`.

    Raises:
        ValueError: if the model is not compiled (or for bad arguments).

    Example:

    ```python
    finder = kt.callbacks.find_learning_rate(model, x, y, batch_size=64)
    model.optimizer.learning_rate = finder.suggestion
    ```
    """
    finder = LRFinder(
        min_lr=min_lr,
        max_lr=max_lr,
        num_steps=num_steps,
        smoothing=smoothing,
        divergence_threshold=divergence_threshold,
    )
    _common.check_optimizer(finder, model)
    kwargs = {} if batch_size is None else {"batch_size": batch_size}
    model.fit(x, y, epochs=1, callbacks=[finder], verbose=0, shuffle=True, **kwargs)
    if plot_path is not None:
        finder.plot(plot_path)
    return finder
