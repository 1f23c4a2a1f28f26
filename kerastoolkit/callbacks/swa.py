"""`SWA`: stochastic weight averaging over the last epochs or cycles."""

import warnings

import keras
import numpy as np

from kerastoolkit import _callback_common as _common
from kerastoolkit.callbacks.precise_bn import _batchnorm_layers
from kerastoolkit.callbacks.precise_bn import recompute_batchnorm_statistics


@keras.saving.register_keras_serializable(package="kerastoolkit")
class SWA(_common.ResumableMixin, keras.callbacks.Callback):
    """Stochastic Weight Averaging (Izmailov et al. 2018), then BatchNorm statistics.

    From epoch `start_epoch` on, every `frequency` epochs (e.g. at the end of
    each cycle of a cyclic schedule), the trainable weights `w` are added to
    a running average,

    ```
    w_swa ← (n · w_swa + w) / (n + 1),     n ← n + 1
    ```

    and when training ends the model's weights are set to `w_swa`. Because
    the averaged weights never ran a forward pass, the BatchNorm statistics
    are then recomputed on `data` (the paper's last step; see
    `kt.callbacks.PreciseBatchNorm`). For an exponential moving average of
    the weights use Keras's `use_ema=True` optimizers with
    `keras.callbacks.SwapEMAWeights` instead.

    With `backup_dir` (the directory of `keras.callbacks.BackupAndRestore`,
    listed after this callback) the running average is saved every epoch
    and a resumed run continues it.

    Args:
        start_epoch: int >= 0, the first epoch (0-based) whose weights are
            averaged.
        frequency: int >= 1, average every `frequency` epochs. Defaults to `1`.
        data: training inputs for the BatchNorm statistics (as in
            `PreciseBatchNorm`), or `None` to keep the statistics of the last
            epoch (a warning is given when the model has BatchNorm layers).
            Defaults to `None`.
        num_batches: int >= 1, batches for the statistics. Defaults to `50`.
        batch_size: int >= 1, batch size for array `data`. Defaults to `None`.
        backup_dir: directory for the callback's state, or `None`.
            Defaults to `None`.

    Raises:
        ValueError: for `start_epoch < 0`, `frequency < 1` or `num_batches < 1`.
        TypeError: for values of the wrong type.

    Example:

    ```python
    swa = kt.callbacks.SWA(start_epoch=15, data=x_train)
    model.fit(x_train, y_train, epochs=20, callbacks=[swa])
    ```

    References:
        - [Izmailov et al., 2018](https://arxiv.org/abs/1803.05407),
          "Averaging Weights Leads to Wider Optima and Better Generalization",
          Algorithm 1.
    """

    def __init__(
        self,
        start_epoch,
        frequency=1,
        data=None,
        num_batches=50,
        batch_size=None,
        backup_dir=None,
    ):
        super().__init__()
        self.start_epoch = _common.check_int("start_epoch", start_epoch, 0)
        self.frequency = _common.check_int("frequency", frequency, 1)
        self.data = data
        self.num_batches = _common.check_int("num_batches", num_batches, 1)
        self.batch_size = _common.check_int("batch_size", batch_size, 1, allow_none=True)
        self.backup_dir = _common.check_backup_dir(backup_dir)
        self._state_file = _common.StateFile(self.backup_dir, "swa")
        self.count = 0
        self.average = None

    def on_train_begin(self, logs=None):
        self.count = 0
        self.average = None
        self._begin_fit()

    def on_epoch_begin(self, epoch, logs=None):
        first = getattr(self, "_first_epoch_of_fit", False)
        self._maybe_resume(epoch)
        if first and epoch > self.start_epoch and not self.count:
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

    def _restore_state(self, state, arrays):
        self.count = state["count"]
        self.average = arrays if self.count else None

    def on_epoch_end(self, epoch, logs=None):
        if epoch >= self.start_epoch and (epoch - self.start_epoch) % self.frequency == 0:
            weights = [
                np.asarray(keras.ops.convert_to_numpy(w), "float64")
                for w in self.model.trainable_weights
            ]
            if self.average is None:
                self.average = weights
            else:
                n = self.count
                self.average = [(a * n + w) / (n + 1) for a, w in zip(self.average, weights)]
            self.count += 1
        if logs is not None:
            logs["swa_count"] = self.count
        self._state_file.save(epoch + 1, {"count": self.count}, self.average)

    def on_train_end(self, logs=None):
        self._resume_if_no_epoch_ran()
        if not self.count:
            return
        if keras.backend.backend() == "jax":
            self.model.jax_state_sync()
        for variable, value in zip(self.model.trainable_weights, self.average):
            variable.assign(value.astype(variable.dtype))
        if self.data is not None:
            recompute_batchnorm_statistics(
                self.model, self.data, self.num_batches, self.batch_size
            )
        elif _batchnorm_layers(self.model):
            warnings.warn(
                "SWA averaged the weights of a model with BatchNormalization "
                "but got no `data`: the BatchNorm statistics are those of the "
                "last epoch, not of the averaged weights. Pass `data=`.",
                stacklevel=2,
            )

    def get_config(self):
        return {
            "start_epoch": self.start_epoch,
            "frequency": self.frequency,
            "num_batches": self.num_batches,
            "batch_size": self.batch_size,
            "backup_dir": self.backup_dir,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
