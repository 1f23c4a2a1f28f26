"""Train one model with several optimizers from the same start; rank them."""

import dataclasses
import time

import keras
import numpy as np

from kerastoolkit.optimizers import registry


@dataclasses.dataclass
class BakeoffEntry:
    """One candidate's result.

    Attributes:
        name: The candidate's label.
        best: Best value of the monitored metric over the epochs.
        epoch: The epoch (1-based) of that best value.
        seconds: Wall-clock seconds of its `model.fit`.
        history: The monitored metric per epoch.
    """

    name: str
    best: float
    epoch: int
    seconds: float
    history: list


@dataclasses.dataclass
class BakeoffResult:
    """Candidates ranked best first; `str()` gives a table.

    Attributes:
        monitor: The metric the ranking uses.
        mode: `"max"` or `"min"`.
        entries: A list of `BakeoffEntry`, best first.
    """

    monitor: str
    mode: str
    entries: list

    def as_dicts(self):
        """The table as a list of dicts (rank, name, best, epoch, seconds)."""
        return [
            {"rank": i + 1, "name": e.name, "best": e.best, "epoch": e.epoch,
             "seconds": e.seconds}
            for i, e in enumerate(self.entries)
        ]

    def __str__(self):
        width = max([len("optimizer")] + [len(e.name) for e in self.entries])
        header = (f"{'rank':>4}  {'optimizer':<{width}}  "
                  f"{'best ' + self.monitor:>16}  {'epoch':>5}  {'seconds':>8}")
        lines = [header, "-" * len(header)]
        for i, e in enumerate(self.entries):
            lines.append(f"{i + 1:>4}  {e.name:<{width}}  {e.best:>16.4f}  "
                         f"{e.epoch:>5}  {e.seconds:>8.2f}")
        return "\n".join(lines)


def _label_and_optimizer(candidate):
    if isinstance(candidate, tuple) and len(candidate) == 2:
        label, optimizer = candidate
        if not isinstance(label, str):
            raise TypeError(
                "A `(label, optimizer)` candidate needs a string label. "
                f"Received: candidate={candidate!r}"
            )
        return label, registry.get(optimizer)
    if isinstance(candidate, str):
        return candidate, registry.get(candidate)
    if isinstance(candidate, keras.optimizers.Optimizer):
        return candidate.name, candidate
    raise TypeError(
        "Each candidate must be an optimizer name, a "
        "`keras.optimizers.Optimizer` or a `(label, optimizer)` tuple. "
        f"Received: candidate={candidate!r}"
    )


def _fit_args(data, name):
    if isinstance(data, (tuple, list)):
        if len(data) != 2:
            raise ValueError(
                f"`{name}` as a tuple must be `(x, y)`. "
                f"Received: {name} of length {len(data)}"
            )
        return tuple(data)
    return data


def bakeoff(
    build_model,
    train_data,
    val_data,
    candidates,
    epochs,
    monitor="val_accuracy",
    mode="auto",
    batch_size=None,
    plot_path=None,
    seed=0,
):
    """Trains one model with each optimizer from the same initial weights.

    Schmidt, Schneider & Hennig (2021) found that trying several optimizers
    at their default settings is about as good as tuning one. `bakeoff` does
    that fairly: the model is built once, and every candidate starts from
    those same initial weights (and the same random seed, so shuffling and
    dropout match), trains for `epochs`, and is ranked by the best value of
    `monitor` over the epochs.

    Args:
        build_model: A callable `build_model(optimizer)` that returns a
            built model compiled with that optimizer (and the loss and
            metrics you want).
        train_data: `(x, y)` arrays, or a `tf.data.Dataset` /
            `keras.utils.PyDataset` of batches.
        val_data: `(x, y)` arrays or a dataset, used as `validation_data`.
        candidates: A list of optimizer names (see `get`), optimizers, or
            `(label, optimizer)` tuples.
        epochs: Epochs per candidate, >= 1.
        monitor: A key of `History.history`. Defaults to `"val_accuracy"`.
        mode: `"max"`, `"min"` or `"auto"` (min when the name contains
            "loss"). Defaults to `"auto"`.
        batch_size: Batch size when `train_data` is arrays. Defaults to
            `None` (Keras's 32).
        plot_path: If given, a PNG of `monitor` per epoch for every
            candidate is saved there. Defaults to `None`.
        seed: Seed set with `keras.utils.set_random_seed` before each
            candidate. Defaults to `0`.

    Returns:
        A `BakeoffResult`: its `entries` are ranked best first, `str()` is a
        table and `as_dicts()` the rows.

    Raises:
        ValueError: for an empty candidate list, duplicate labels,
            `epochs < 1`, an unknown `mode` or a `monitor` the history lacks.
        TypeError: for a candidate of the wrong type or a `build_model`
            that does not return a compiled, built `keras.Model`.

    Example:

    ```python
    import kerastoolkit as kt

    def build_model(optimizer):
        model = keras.Sequential([keras.Input((64,)),
                                  keras.layers.Dense(10, "softmax")])
        model.compile(optimizer, "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model

    table = kt.optimizers.bakeoff(build_model, (x, y), (x_val, y_val),
                                  ["adam", "sgd", "rmsprop", "swats"], 10)
    print(table)
    ```

    References:
        - Schmidt, Schneider & Hennig, 2021, "Descending through a Crowded
          Valley - Benchmarking Deep Learning Optimizers", ICML.
    """
    if not callable(build_model):
        raise TypeError(
            f"`build_model` must be callable. Received: build_model={build_model!r}"
        )
    candidates = list(candidates)
    if not candidates:
        raise ValueError("`candidates` must not be empty. Received: candidates=[]")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"`epochs` must be an integer >= 1. Received: epochs={epochs!r}")
    if mode == "auto":
        mode = "min" if "loss" in monitor else "max"
    if mode not in ("min", "max"):
        raise ValueError(f"`mode` must be 'min', 'max' or 'auto'. Received: mode={mode!r}")
    labelled = [_label_and_optimizer(c) for c in candidates]
    labels = [label for label, _ in labelled]
    if len(set(labels)) != len(labels):
        raise ValueError(f"Candidate labels must be unique. Received: labels={labels}")

    train = _fit_args(train_data, "train_data")
    val = _fit_args(val_data, "val_data")
    initial_weights = None
    entries = []
    for label, optimizer in labelled:
        keras.utils.set_random_seed(seed)
        model = build_model(optimizer)
        if not isinstance(model, keras.Model) or not model.built:
            raise TypeError(
                "`build_model(optimizer)` must return a built `keras.Model` "
                f"(give it an Input). Received: {model!r}"
            )
        if model.optimizer is None:
            raise TypeError(
                "`build_model(optimizer)` must compile the model with the "
                f"optimizer it is given. Received a model without optimizer "
                f"for candidate {label!r}"
            )
        if initial_weights is None:
            initial_weights = [np.copy(w) for w in model.get_weights()]
        else:
            model.set_weights(initial_weights)
        kwargs = {"epochs": epochs, "validation_data": val, "verbose": 0}
        if isinstance(train, tuple):
            kwargs["batch_size"] = batch_size
            start = time.perf_counter()
            history = model.fit(train[0], train[1], **kwargs)
        else:
            start = time.perf_counter()
            history = model.fit(train, **kwargs)
        seconds = time.perf_counter() - start
        if monitor not in history.history:
            raise ValueError(
                f"`monitor` is not in the training history (keys: "
                f"{sorted(history.history)}). Received: monitor={monitor!r}"
            )
        values = [float(v) for v in history.history[monitor]]
        finite = [v if np.isfinite(v) else
                  (-np.inf if mode == "max" else np.inf) for v in values]
        best_index = int(np.argmax(finite) if mode == "max" else np.argmin(finite))
        entries.append(BakeoffEntry(label, values[best_index], best_index + 1,
                                    seconds, values))
    def sort_key(entry):
        value = entry.best if np.isfinite(entry.best) else (
            -np.inf if mode == "max" else np.inf)
        return -value if mode == "max" else value

    entries.sort(key=sort_key)
    result = BakeoffResult(monitor=monitor, mode=mode, entries=entries)
    if plot_path is not None:
        _plot(result, plot_path)
    return result


def _plot(result, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from kerastoolkit.diagnostics.plots import save_figure

    figure = Figure(figsize=(6, 4))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    for entry in result.entries:
        epochs = np.arange(1, len(entry.history) + 1)
        axes.plot(epochs, entry.history, marker="o", label=entry.name)
    axes.set_xlabel("epoch")
    axes.set_ylabel(result.monitor)
    axes.set_title(f"Optimizer bake-off ({result.monitor})")
    axes.legend()
    save_figure(figure, path)
