"""`Preflight`: the preflight checks as a callback, before the first step."""

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

    Only copies of the model are trained: the model, its optimizer and the
    random state are exactly as they were when `fit` starts its first step.
    A finding at or above `stop_on` stops the run before its first step:
    `fit` raises `PreflightError` (Keras checks `stop_training` only after a
    step, and a step with out-of-range labels already fails), with the
    report in the message and in `error.report`.

    Args:
        data: `(x, y)` arrays or a batched dataset of `(x, y)`, in the order
            training sees them (see `kt.preflight.check`).
        stop_on: `"error"` stops training when a finding has severity
            error, `"warning"` on warnings too, `None` never. Defaults to
            `"error"`.
        batch_size: the training batch size. Defaults to `32`.
        shuffle: whether `fit` shuffles the arrays. Defaults to `False`.
        verbose: print the report. Defaults to `1`.

    Raises:
        ValueError: for an unknown `stop_on`.
        PreflightError: from `fit`, when a finding reaches `stop_on`.

    Example:

    ```python
    model.fit(x, y, epochs=10, callbacks=[kt.callbacks.Preflight((x, y))])
    ```
    """

    def __init__(self, data, stop_on="error", batch_size=32, shuffle=False, verbose=1):
        super().__init__()
        if stop_on not in _STOP_ON:
            raise ValueError(
                "`stop_on` must be 'error', 'warning' or None. "
                f"Received: stop_on={stop_on!r}"
            )
        self.data = data
        self.stop_on = stop_on
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.verbose = verbose
        self.report = None

    def on_train_begin(self, logs=None):
        from kerastoolkit.preflight.checks import check

        self.report = check(self.model, self.data, batch_size=self.batch_size,
                            shuffle=self.shuffle)
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
