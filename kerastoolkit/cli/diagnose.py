"""`kerastoolkit diagnose`: `kt.diagnostics.diagnose` on a run's CSV logs.

```
kerastoolkit diagnose EPOCHS.csv [--steps STEPS.csv] [--json] [--plot OUT.png]
```
"""

import json
import sys

from kerastoolkit.cli._args import csv_file_problem
from kerastoolkit.cli._args import fail
from kerastoolkit.cli._args import plot_path_problem


def add(subparsers):
    parser = subparsers.add_parser(
        "diagnose",
        help="say what a training run's learning curves mean and what to try next",
        description=(
            "Diagnose learning curves (not training, diverging, NaN, unshuffled "
            "data, slow start, not converged, overfitting) from a Keras "
            "CSVLogger file (the epochs.csv `kerastoolkit train` and "
            "CurveDiagnostics write) and optionally a per-step loss CSV."
        ),
    )
    _add_arguments(parser)
    return parser


def _add_arguments(parser):
    parser.add_argument(
        "epochs",
        metavar="EPOCHS.csv",
        help="per-epoch log with a 'loss' column (and 'val_loss', metrics), "
        "as written by keras.callbacks.CSVLogger",
    )
    parser.add_argument(
        "--steps",
        metavar="STEPS.csv",
        default=None,
        help="per-step losses: a CSV with 'step' and 'loss' columns (and "
        "'epoch' when known), e.g. the steps.csv CurveDiagnostics writes",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the whole report as JSON (summary, healthy, findings each with "
        "its 'code', notes, curves) instead of the text summary",
    )
    parser.add_argument(
        "--plot",
        metavar="OUT.png",
        default=None,
        help="also save the curves with the findings annotated to this PNG",
    )
    return parser




def validate(args, parser):
    """The files exist and are text, checked before Keras is imported."""
    for path, flag in ((args.epochs, "EPOCHS.csv"), (args.steps, "--steps")):
        problem = path is not None and csv_file_problem(path, flag)
        if problem:
            parser.error(problem)
    problem = args.plot is not None and plot_path_problem(args.plot)
    if problem:
        parser.error(f"argument --plot: {problem}")


def run(args):
    """Runs `diagnose` for parsed (and validated) arguments; returns the exit code.

    Exit codes: `0` the run was diagnosed (with or without findings), `2`
    the input could not be read (a one-line error on stderr).
    """
    from kerastoolkit.diagnostics.curves import diagnose

    try:
        report = diagnose(epochs=args.epochs, steps=args.steps)
    except (ValueError, TypeError, OSError) as error:
        return fail(error, 2)
    if args.json:
        summary = str(report).splitlines()[0]
        print(json.dumps({"summary": summary, **report.to_dict()}, indent=2))
    else:
        print(report)
    if args.plot:
        try:
            report.plot(args.plot)
        except OSError as error:
            return fail(f"cannot write {args.plot}: {error}", 2)
    sys.stdout.flush()
    return 0
