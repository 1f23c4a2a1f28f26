"""`SWA`: stochastic weight averaging over epochs or steps, and its checkpoint."""

import warnings
import weakref

import keras
import numpy as np

from kerastoolkit import _callback_common as _common
from kerastoolkit.callbacks.precise_bn import _batchnorm_layers
from kerastoolkit.callbacks.precise_bn import recompute_batchnorm_statistics

# model -> the SWA whose average is in the model, holding the weights it replaced
_SWAPPED = weakref.WeakKeyDictionary()


def _numpy(variable):
    return np.asarray(keras.ops.convert_to_numpy(variable))


@keras.saving.register_keras_serializable(package="kerastoolkit")
class SWA(_common.ResumableMixin, keras.callbacks.Callback):
    """Stochastic Weight Averaging (Izmailov et al. 2018), then BatchNorm statistics.

    From epoch `start_epoch` on, every `frequency` epochs (e.g. at the end of
    each cycle of a cyclic schedule), or with `average_period=N` after every
    `N`-th optimizer step counted from the start of epoch `start_epoch`
    (after steps `N, 2N, ...`), the trainable weights `w` are added to a
    running average,

    ```
    w_swa ← (n · w_swa + w) / (n + 1),     n ← n + 1
    ```

    and when training ends the model's weights are swapped with `w_swa`.
    Because the averaged weights never ran a forward pass, the BatchNorm
    statistics are then recomputed on `data` (the paper's last step; see
    `kt.callbacks.PreciseBatchNorm`). `swap_weights()` swaps the model's
    weights and the average by hand (call it again to swap back), and
    `AverageModelCheckpoint` saves the averaged weights during training.
    For an exponential moving average of the weights use Keras's
    `use_ema=True` optimizers with `keras.callbacks.SwapEMAWeights` instead.

    Training split over several `fit` calls (`fit(epochs=k)`, then
    `fit(epochs=n, initial_epoch=k)`) is one run: the next `fit` starting
    where the last ended swaps the trained weights back in and continues
    the same average, so it ends as one `fit(epochs=n)` would.

    With `backup_dir` (the directory of `keras.callbacks.BackupAndRestore`,
    listed after this callback) the running average is saved every epoch
    and a resumed run continues it.

    Args:
        start_epoch: int >= 0, the first epoch (0-based) whose weights are
            averaged.
        frequency: int >= 1, average at the end of every `frequency`-th
            epoch from `start_epoch`; `None` for 1. Not with
            `average_period`. Defaults to `None`.
        data: training inputs for the BatchNorm statistics (as in
            `PreciseBatchNorm`), or `None` to keep the statistics of the last
            epoch (a warning is given when the model has BatchNorm layers).
            Defaults to `None`.
        num_batches: int >= 1, batches for the statistics. Defaults to `50`.
        batch_size: int >= 1, batch size for array `data`. Defaults to `None`.
        backup_dir: directory for the callback's state, or `None`.
            Defaults to `None`.
        average_period: int >= 1, average after every this many optimizer
            steps (from the start of epoch `start_epoch`) instead of at epoch
            ends, as TensorFlow Addons' `SWA(average_period=...)` did (it
            averaged after the first step of each period; this averages
            after the last, so `average_period=steps_per_epoch` is
            `frequency=1`). Must be a multiple of `steps_per_execution`.
            Defaults to `None` (epoch ends).

    Raises:
        ValueError: for `start_epoch < 0`, `frequency < 1`,
            `average_period < 1`, `num_batches < 1`, or both `frequency` and
            `average_period`.
        TypeError: for values of the wrong type.

    Example:

    ```python
    swa = kt.callbacks.SWA(start_epoch=15, data=x_train)
    model.fit(x_train, y_train, epochs=20, callbacks=[swa])
    swa.swap_weights()  # the last trained weights, e.g. to train on
    ```

    References:
        - [Izmailov et al., 2018](https://arxiv.org/abs/1803.05407),
          "Averaging Weights Leads to Wider Optima and Better Generalization",
          Algorithm 1.
    """

    def __init__(
        self,
        start_epoch,
        frequency=None,
        data=None,
        num_batches=50,
        batch_size=None,
        backup_dir=None,
        average_period=None,
    ):
        super().__init__()
        self.start_epoch = _common.check_int("start_epoch", start_epoch, 0)
        self.frequency = _common.check_int("frequency", frequency, 1, allow_none=True)
        self.average_period = _common.check_int(
            "average_period", average_period, 1, allow_none=True
        )
        if self.frequency is not None and self.average_period is not None:
            raise ValueError(
                "Give `frequency` (epochs) or `average_period` (steps), not both. "
                f"Received: frequency={frequency}, average_period={average_period}"
            )
        self.data = data
        self.num_batches = _common.check_int("num_batches", num_batches, 1)
        self.batch_size = _common.check_int("batch_size", batch_size, 1, allow_none=True)
        self.backup_dir = _common.check_backup_dir(backup_dir)
        self._state_file = _common.StateFile(self.backup_dir, "swa")
        self.count = 0
        self.average = None
        self._steps = 0  # optimizer steps since the start of epoch `start_epoch`
        self._stash = None  # the weights the average replaced while it is in the model
        self._end_epoch = None  # where the last `fit` ended, while the average is in
        self._warned_bn = False

    # --- swapping ------------------------------------------------------
    def swap_weights(self):
        """Swaps the model's weights with the running average; again to swap back.

        Swapping in sets the trainable weights to `w_swa` and, with `data`,
        recomputes the BatchNorm statistics for them; swapping back puts
        every weight (statistics included) back as it was. Works during and
        after `fit`, on every backend and under a `tf.distribute` strategy
        (called from the cross-replica context, as callbacks are).

        Returns:
            `True` when the average is now in the model, `False` when the
            model's own weights are back.

        Raises:
            ValueError: before anything was averaged, or without a model.
        """
        model = self.model
        if model is None:
            raise ValueError("`SWA.swap_weights()` needs the model: use it in `fit` first.")
        if keras.backend.backend() == "jax":
            model.jax_state_sync()  # read the weights `fit` trains, not stale copies
        if self._stash is not None:
            model.set_weights(self._stash)
            self._stash = None
            _SWAPPED.pop(model, None)
            return False
        if not self.count:
            raise ValueError(
                "`SWA` has averaged nothing yet: there is no average to swap in "
                f"(averaging starts at epoch {self.start_epoch}). Received: count=0"
            )
        self._stash = [np.array(w) for w in model.get_weights()]
        for variable, value in zip(model.trainable_weights, self.average):
            variable.assign(value.astype(variable.dtype))
        self._recompute_statistics()
        _SWAPPED[model] = self
        return True

    def _recompute_statistics(self):
        if self.data is not None:
            recompute_batchnorm_statistics(
                self.model, self.data, self.num_batches, self.batch_size
            )
        elif _batchnorm_layers(self.model) and not self._warned_bn:
            self._warned_bn = True
            warnings.warn(
                "SWA averaged the weights of a model with BatchNormalization "
                "but got no `data`: the BatchNorm statistics are those of the "
                "last epoch, not of the averaged weights. Pass `data=`.",
                stacklevel=3,
            )

    def _average_in_model(self):
        """Whether the model still holds the average this callback put in."""
        return all(
            np.array_equal(_numpy(v), a.astype(_numpy(v).dtype))
            for v, a in zip(self.model.trainable_weights, self.average)
        )

    def _trained_weights(self):
        """The trained (not averaged) trainable weights, also while swapped."""
        if self._stash is None:
            return [np.asarray(_numpy(w), "float64") for w in self.model.trainable_weights]
        index = {id(v): i for i, v in enumerate(self.model.weights)}
        return [np.asarray(self._stash[index[id(v)]], "float64")
                for v in self.model.trainable_weights]

    # --- training ------------------------------------------------------
    def on_train_begin(self, logs=None):
        self._begin_fit()
        self._epoch = None
        spe = int(getattr(self.model, "steps_per_execution", 1) or 1)
        if self.average_period is not None and self.average_period % spe:
            raise ValueError(
                f"`SWA(average_period={self.average_period})` averages after every "
                f"{self.average_period} steps, but with `steps_per_execution={spe}` "
                f"callbacks see every {spe}-th step only. Use a multiple of {spe}. "
                f"Received: average_period={self.average_period}, steps_per_execution={spe}"
            )

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_start_steps = self._steps
        if getattr(self, "_first_epoch_of_fit", False):
            self._first_epoch(epoch)

    def _first_epoch(self, epoch):
        holder = _SWAPPED.get(self.model)
        continuing = (
            holder is not None and holder._end_epoch == epoch and holder._average_in_model()
        )
        if continuing:  # the last `fit` ended here: train on from its weights
            if keras.backend.backend() == "jax":
                self.model.jax_state_sync()
            holder.swap_weights()
            if holder is self or (holder._config_key() == self._config_key()
                                  and self.backup_dir is None):
                self.count, self.average, self._steps = holder.count, holder.average, holder._steps
                self._epoch_start_steps = self._steps
                self._first_epoch_of_fit = False
        elif holder is not None:
            holder._stash = None  # a new run from the averaged weights
            _SWAPPED.pop(self.model, None)
        if getattr(self, "_first_epoch_of_fit", False):
            self.count, self.average, self._steps = 0, None, 0
            self._maybe_resume(epoch)
            self._epoch_start_steps = self._steps
        if epoch > self.start_epoch and not self.count:
            raise ValueError(
                f"`SWA` starts at epoch {epoch}, after its start_epoch="
                f"{self.start_epoch}, without the running average of the epochs "
                "before (a run resumed from a `.keras` checkpoint, or a "
                "`BackupAndRestore` run without SWA's `backup_dir`): the average "
                "would silently miss them. Give SWA the `backup_dir` of "
                "`BackupAndRestore`, or a start_epoch >= the first epoch. "
                f"Received: initial epoch={epoch}, start_epoch={self.start_epoch}, "
                f"backup_dir={self.backup_dir!r}"
            )

    def _config_key(self):
        return (self.start_epoch, self.frequency, self.average_period)

    def _restore_state(self, state, arrays):
        self.count = state["count"]
        self._steps = state.get("steps", 0)
        self.average = arrays if self.count else None

    def _accumulate(self):
        if keras.backend.backend() == "jax":
            self.model.jax_state_sync()
        weights = self._trained_weights()
        if self.average is None:
            self.average = weights
        else:
            n = self.count
            self.average = [(a * n + w) / (n + 1) for a, w in zip(self.average, weights)]
        self.count += 1

    def on_train_batch_end(self, batch, logs=None):
        if self.average_period is None or self._epoch is None or self._epoch < self.start_epoch:
            return
        before = self._steps
        self._steps = self._epoch_start_steps + int(batch) + 1
        if self._steps // self.average_period > before // self.average_period:
            self._accumulate()

    def on_epoch_end(self, epoch, logs=None):
        if self.average_period is None and epoch >= self.start_epoch and (
            (epoch - self.start_epoch) % (self.frequency or 1) == 0
        ):
            self._accumulate()
        if logs is not None:
            logs["swa_count"] = self.count
        self._end_epoch = epoch + 1
        self._state_file.save(
            epoch + 1, {"count": self.count, "steps": self._steps}, self.average
        )

    def on_train_end(self, logs=None):
        if getattr(self, "_first_epoch_of_fit", False):  # no epoch ran
            if self._stash is not None:
                return  # the average of an earlier `fit` is still in the model
            # Resumed after its last epoch: the state saved after it, if any.
            self._end_epoch = (self.params or {}).get("epochs") or 0
            self.count, self.average, self._steps = 0, None, 0
            self._resume_if_no_epoch_ran()
        if not self.count:
            return
        if self._stash is not None:  # swapped in by hand earlier: the latest average
            self.swap_weights()
        self.swap_weights()

    def get_config(self):
        return {
            "start_epoch": self.start_epoch,
            "frequency": self.frequency,
            "num_batches": self.num_batches,
            "batch_size": self.batch_size,
            "backup_dir": self.backup_dir,
            "average_period": self.average_period,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="kerastoolkit")
class AverageModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """`keras.callbacks.ModelCheckpoint` that saves `SWA`'s averaged weights.

    At the end of each epoch it swaps the running average of `swa` into
    the model (`SWA.swap_weights()`: the BatchNorm statistics recomputed
    for the averaged weights on `swa.data`), lets `ModelCheckpoint` save,
    and swaps the trained weights back, as TensorFlow Addons'
    `AverageModelCheckpoint(update_weights=False)` did. List it after `swa`
    (so that the epoch's average includes the epoch). Before the first
    average (epochs before `swa.start_epoch`) nothing is saved.

    Args:
        swa: the `kt.callbacks.SWA` of the same `fit`.
        filepath: as in `ModelCheckpoint` (`"avg_{epoch}.keras"`...).
        **kwargs: any other `ModelCheckpoint` argument (`monitor`,
            `save_best_only`, `save_weights_only`, `mode`, `verbose`,
            `initial_value_threshold`); `save_freq` must be `"epoch"`.

    Raises:
        TypeError: if `swa` is not a `kt.callbacks.SWA`.
        ValueError: for an integer `save_freq` (swapping the average in at
            every batch would recompute the BatchNorm statistics each time);
            when training starts, for a model with BatchNormalization and a
            `swa` without `data` (the statistics would not be the averaged
            weights').

    Example:

    ```python
    swa = kt.callbacks.SWA(start_epoch=5, average_period=100, data=x_train)
    checkpoint = kt.callbacks.AverageModelCheckpoint(swa, "swa_{epoch}.keras")
    model.fit(x_train, y_train, epochs=10, callbacks=[swa, checkpoint])
    ```
    """

    def __init__(self, swa, filepath, **kwargs):
        if not isinstance(swa, SWA):
            raise TypeError(
                f"Argument `swa` must be a `kt.callbacks.SWA`. Received: swa={swa!r}"
            )
        if kwargs.get("save_freq", "epoch") != "epoch":
            raise ValueError(
                "`AverageModelCheckpoint` saves at epoch ends only: swapping the "
                "average in at a batch would recompute the BatchNorm statistics "
                f"at every batch. Received: save_freq={kwargs['save_freq']!r}"
            )
        super().__init__(filepath, **kwargs)
        self.swa = swa
        self._kwargs = dict(kwargs)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.swa.data is None and _batchnorm_layers(self.model):
            raise ValueError(
                "`AverageModelCheckpoint` would save averaged weights with the "
                "BatchNorm statistics of the trained weights: give the `SWA` "
                "the training inputs (`SWA(..., data=x_train)`) so that they "
                "are recomputed for the average. Received: swa.data=None"
            )

    def on_epoch_end(self, epoch, logs=None):
        if not self.swa.count:
            return
        swapped = self.swa._stash is None and self.swa.swap_weights()
        try:
            super().on_epoch_end(epoch, logs)
        finally:
            if swapped:
                self.swa.swap_weights()

    def get_config(self):
        return dict(
            swa=keras.saving.serialize_keras_object(self.swa),
            filepath=self.filepath,
            **self._kwargs,
        )

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["swa"] = keras.saving.deserialize_keras_object(config["swa"])
        return cls(**config)
