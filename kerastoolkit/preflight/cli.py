"""The call `kerastoolkit train --preflight` makes."""

import sys


def preflight_for_cli(model, x, y, batch_size=32, shuffle=True, stream=None):
    """Runs `check` on the training arrays, prints the report, returns it.

    Args:
        model: the compiled model `train` is about to fit.
        x: training inputs (arrays).
        y: training labels.
        batch_size: the training batch size. Defaults to `32`.
        shuffle: whether `fit` shuffles the arrays. Defaults to `True`.
        stream: a text stream. Defaults to `None` (`sys.stdout`).

    Returns:
        The `PreflightReport`; the caller stops when `report.errors`.
    """
    from kerastoolkit.preflight.checks import check

    report = check(model, (x, y), batch_size=batch_size, shuffle=shuffle)
    print(report, file=stream or sys.stdout)
    return report
