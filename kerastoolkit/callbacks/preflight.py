"""`Preflight`: the preflight checks as a callback, before the first step."""

import math

import keras


class PreflightError(RuntimeError):
    """Raised by `Preflight` to stop a doomed run; `.report` holds the findings."""

    def __init__(self, message, report=None):
        super().__init__(message)
        self.report = report


_STOP_ON = ("error", "warning", None)


@keras.saving.register_keras_serializable(package="kerastoolkit")
class Preflight(keras.callbacks.Callback):
    """Runs `kt.preflight.check` in `on_train_begin` and can stop a doomed run.

    Only a copy of the model is trained: the model, its optimizer, the data
    and the random state are exactly as they were when `fit` starts its
    first step. The checks judge the data in the order `fit` will use: give
    the callback the data `fit` gets, and `shuffle` as `fit` gets it (a
    callback cannot see `fit`'s arguments; it assumes `fit`'s default,
    which shuffles arrays). The batch size and the number of epochs are read
    from `fit`'s parameters when not given. A finding at or above `stop_on`
    stops the run before its first step: `fit` raises `PreflightError`
    (Keras checks `stop_training` only after a step, and a step with
    out-of-range labels already fails), with the report in the message and
    in `error.report`.

    Args:
        data: the training data `fit` gets: `(x, y)` arrays, a batched
            `tf.data.Dataset`, a `keras.utils.PyDataset` (see
            `kt.preflight.check`).
        stop_on: `"error"` stops training when a finding has severity
            error, `"warning"` on warnings too, `None` never. Defaults to
            `"error"`.
        batch_size: `fit`'s batch size for arrays. Defaults to `None`: the
            one that gives `fit`'s number of steps per epoch.
        shuffle: `fit`'s `shuffle` (`True`, `False` or `"batch"`). Defaults
            to `None`: `fit`'s own default, `True`.
        verbose: print the report. Defaults to `1`.

    Raises:
        ValueError: for an unknown `stop_on` or `shuffle`.
        PreflightError: from `fit`, when a finding reaches `stop_on`.

    Example:

    ```python
    model.fit(x, y, epochs=10, callbacks=[kt.callbacks.Preflight((x, y))])
    model.fit(x, y, shuffle=False, callbacks=[kt.callbacks.Preflight((x, y), shuffle=False)])
    ```
    """

    def __init__(self, data, stop_on="error", batch_size=None, shuffle=None, verbose=1):
        super().__init__()
        if stop_on not in _STOP_ON:
            raise ValueError(
                "`stop_on` must be 'error', 'warning' or None. "
                f"Received: stop_on={stop_on!r}"
            )
        if shuffle not in (None, True, False, "batch"):
            raise ValueError(
                "`shuffle` must be None (fit's default), True, False or 'batch'. "
                f"Received: shuffle={shuffle!r}"
            )
        if batch_size is not None and (
                not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1):
            raise ValueError(
                f"`batch_size` must be None or an integer >= 1. Received: batch_size={batch_size!r}")
        self.data = data
        self.stop_on = stop_on
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.verbose = verbose
        self.report = None

    def _fit_batch_size(self):
        """The batch size that gives `fit`'s steps per epoch (arrays), else 32."""
        if self.batch_size is not None:
            return self.batch_size
        steps = (self.params or {}).get("steps")
        if steps and isinstance(self.data, (tuple, list)) and len(self.data) in (2, 3):
            n = len(keras.tree.flatten(self.data[0])[0])
            return max(1, math.ceil(n / steps))
        return 32

    def on_train_begin(self, logs=None):
        from kerastoolkit.preflight import check

        self.report = check(
            self.model, self.data, batch_size=self._fit_batch_size(),
            shuffle=True if self.shuffle is None else self.shuffle,
            epochs=(self.params or {}).get("epochs"))
        if self.verbose:
            print(self.report)
        levels = {"error": ("error",), "warning": ("error", "warning"), None: ()}
        stopping = [f for f in self.report.findings if f.severity in levels[self.stop_on]]
        if stopping:
            self.model.stop_training = True
            raise PreflightError(
                "Preflight stopped the run before its first step "
                f"({', '.join(f.code for f in stopping)}):\n{self.report}",
                self.report,
            )

    def get_config(self):
        # the data are not part of the config (arrays, datasets)
        return {"data": None, "stop_on": self.stop_on, "batch_size": self.batch_size,
                "shuffle": self.shuffle, "verbose": self.verbose}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
