"""Reading training logs: Keras `History`, dicts, `CSVLogger` files, step CSVs.

Every reader returns plain NumPy data and raises `ValueError` naming the file
and the problem (empty, malformed, no `loss` column, mismatched lengths).
"""

import csv
import math
import os

import numpy as np

_MISSING = ("", "na", "n/a", "none", "null")


def _is_path(value):
    return isinstance(value, (str, os.PathLike))


def _parse_float(text, where):
    text = text.strip()
    if text.lower() in _MISSING:
        return math.nan, True
    try:
        return float(text), False
    except ValueError:
        raise ValueError(f"{where}: {text!r} is not a number.") from None


def read_csv_columns(path):
    """Reads a numeric CSV with a header row into `{column: float array}`.

    Empty cells and `NA` become NaN (Keras's `CSVLogger` writes `NA` for a
    metric missing on an epoch).

    Args:
        path: the CSV file.

    Returns:
        A dict of column name to 1-D float64 array, columns in file order.

    Raises:
        ValueError: if the file does not exist, is empty, has no header, has
            a row with the wrong number of fields, or a non-numeric value.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file.")
    with open(path, newline="") as handle:
        text = handle.read()
    if not text.strip():
        raise ValueError(f"{path}: the file is empty.")
    try:
        rows = list(csv.reader(text.splitlines()))
    except csv.Error as error:
        raise ValueError(f"{path}: malformed CSV ({error}).") from None
    rows = [(i + 1, row) for i, row in enumerate(rows) if any(c.strip() for c in row)]
    header = [c.strip() for c in rows[0][1]]
    if len(set(header)) != len(header) or any(not c for c in header):
        raise ValueError(
            f"{path}: malformed header (empty or repeated column names): {header}."
        )
    try:
        [_parse_float(c, "") for c in header]
        header_is_numeric = True
    except ValueError:
        header_is_numeric = False
    if header_is_numeric:
        raise ValueError(
            f"{path}: no header row (the first line is numbers: {header})."
        )
    if len(rows) < 2:
        raise ValueError(f"{path}: the file has a header but no data rows.")
    columns = {name: [] for name in header}
    for line, row in rows[1:]:
        if len(row) != len(header):
            raise ValueError(
                f"{path}, line {line}: malformed row, expected {len(header)} "
                f"fields ({','.join(header)}), got {len(row)}."
            )
        for name, cell in zip(header, row):
            value, _ = _parse_float(cell, f"{path}, line {line}, column {name!r}")
            columns[name].append(value)
    return {k: np.asarray(v, dtype="float64") for k, v in columns.items()}


def load_epochs(epochs):
    """Normalises per-epoch logs to `{name: float64 array}`.

    Args:
        epochs: a `keras.callbacks.History`, a dict of per-epoch lists, or the
            path of a Keras `CSVLogger` file (its `epoch` column is dropped).

    Returns:
        A dict with at least `"loss"`, every array of the same length.

    Raises:
        ValueError: on a missing `loss`, an empty log or mismatched lengths.
        TypeError: on an unsupported type.
    """
    source = "epochs"
    if _is_path(epochs):
        source = os.fspath(epochs)
        logs = read_csv_columns(epochs)
        logs.pop("epoch", None)
    elif hasattr(epochs, "history") and isinstance(epochs.history, dict):
        logs = dict(epochs.history)
    elif isinstance(epochs, dict):
        logs = dict(epochs)
    else:
        raise TypeError(
            "`epochs` must be a keras History, a dict of per-epoch lists or a "
            f"CSV path. Received: epochs={type(epochs).__name__}"
        )
    out = {}
    for name, values in logs.items():
        try:
            arr = np.asarray(values, dtype="float64").reshape(-1)
        except (TypeError, ValueError):
            raise ValueError(
                f"{source}: column {name!r} is not numeric. Received: {values!r}"
            ) from None
        out[str(name)] = arr
    if "loss" not in out:
        raise ValueError(
            f"{source}: no 'loss' column; the columns are {sorted(out)}."
        )
    lengths = {k: len(v) for k, v in out.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{source}: mismatched lengths of the columns: {lengths}.")
    if lengths["loss"] == 0:
        raise ValueError(f"{source}: the log has no epochs.")
    return out


def load_steps(steps):
    """Normalises per-step losses.

    Args:
        steps: a sequence of per-step losses (the batch's own loss, not
            Keras's running mean) or the path of a CSV with `step` and `loss`
            columns, and an `epoch` column when known.

    Returns:
        `(losses, epoch_index)`: float64 array, and an int array of the epoch
        of every step (or `None` when unknown).

    Raises:
        ValueError: on an empty or malformed input, or a missing column.
    """
    if _is_path(steps):
        source = os.fspath(steps)
        cols = read_csv_columns(steps)
        for needed in ("step", "loss"):
            if needed not in cols:
                raise ValueError(
                    f"{source}: no {needed!r} column; the columns are {sorted(cols)}."
                )
        order = np.argsort(cols["step"], kind="stable")
        losses = cols["loss"][order]
        epoch = cols.get("epoch")
        if epoch is not None:
            epoch = epoch[order]
            if not np.all(np.isfinite(epoch)):
                raise ValueError(f"{source}: the 'epoch' column has missing values.")
            epoch = epoch.astype("int64")
            if np.any(np.diff(epoch) < 0):
                raise ValueError(f"{source}: 'epoch' decreases while 'step' increases.")
        return losses, epoch
    try:
        losses = np.asarray(steps, dtype="float64")
    except (TypeError, ValueError):
        raise TypeError(
            "`steps` must be a sequence of numbers or a CSV path. "
            f"Received: steps={type(steps).__name__}"
        ) from None
    if losses.ndim != 1:
        raise ValueError(
            f"`steps` must be 1-D. Received: steps with shape {losses.shape}"
        )
    if losses.size == 0:
        raise ValueError("`steps` is empty. Received: steps=[]")
    return losses, None


def load_step_labels(path):
    """The per-step label columns of a steps CSV (`size`, `label_sum`,
    `label_sq_sum`, in step order), or `None` when the file has none."""
    cols = read_csv_columns(path)
    keys = ("size", "label_sum", "label_sq_sum")
    if "step" not in cols or not all(k in cols for k in keys):
        return None
    order = np.argsort(cols["step"], kind="stable")
    return {k: cols[k][order] for k in keys}


def steps_per_epoch_from(epoch_index):
    """The number of steps in every full epoch, from each step's epoch.

    Returns `None` unless all epochs but the last have the same step count.
    """
    if epoch_index is None or len(epoch_index) == 0:
        return None
    _, counts = np.unique(epoch_index, return_counts=True)
    full = counts[:-1] if len(counts) > 1 else counts
    if len(set(full.tolist())) != 1:
        return None
    return int(full[0])
