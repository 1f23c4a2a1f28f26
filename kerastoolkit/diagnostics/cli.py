"""The `kerastoolkit diagnose` subcommand.

```
kerastoolkit diagnose EPOCHS.csv [--steps STEPS.csv] [--json] [--plot OUT.png]
```
"""

import argparse
import json
import sys


def add_parser(subparsers):
    """Adds the `diagnose` subcommand to an `argparse` subparsers object.

    Args:
        subparsers: what `ArgumentParser.add_subparsers()` returned.

    Returns:
        The new sub-parser (its `func` default is `run`).
    """
    parser = subparsers.add_parser(
        "diagnose",
        help="say what a training run's learning curves mean and what to try next",
        description=(
            "Diagnose learning curves (not training, diverging, NaN, unshuffled "
            "data, slow start, not converged, overfitting) from a Keras "
            "CSVLogger file and optionally a per-step loss CSV."
        ),
    )
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def add_arguments(parser):
    """Adds the `diagnose` arguments to `parser`."""
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
        help="print the findings as a JSON list (each with its 'code') "
        "instead of the text summary",
    )
    parser.add_argument(
        "--plot",
        metavar="OUT.png",
        default=None,
        help="also save the curves with the findings annotated to this PNG",
    )
    return parser


def run(args):
    """Runs `diagnose` for parsed arguments; returns the exit code.

    Exit codes: `0` the run was diagnosed (with or without findings), `2`
    the input could not be read (a one-line error on stderr).
    """
    from kerastoolkit.diagnostics.curves import diagnose

    try:
        report = diagnose(epochs=args.epochs, steps=args.steps)
    except (ValueError, TypeError, OSError) as error:
        print(f"kerastoolkit diagnose: error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([f.to_dict() for f in report.findings], indent=2))
    else:
        print(report)
    if args.plot:
        try:
            report.plot(args.plot)
        except OSError as error:
            print(f"kerastoolkit diagnose: error: cannot write {args.plot}: {error}",
                  file=sys.stderr)
            return 2
    return 0


def main(argv=None):
    """Entry point for `python -m kerastoolkit.diagnostics.cli`."""
    parser = add_arguments(argparse.ArgumentParser(prog="kerastoolkit diagnose"))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
