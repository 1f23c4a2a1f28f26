"""The `kerastoolkit diagnose` subcommand.

```
kerastoolkit diagnose EPOCHS.csv [--steps STEPS.csv] [--json] [--plot OUT.png]
```

Its arguments are defined in `kerastoolkit.cli` (which must not import this
package: `kerastoolkit.diagnostics` imports Keras); this module runs it.
"""

import json
import sys


def add_parser(subparsers):
    """Adds the `diagnose` subcommand to an `argparse` subparsers object.

    Args:
        subparsers: what `ArgumentParser.add_subparsers()` returned.

    Returns:
        The new sub-parser (its `func` default is `run`).
    """
    from kerastoolkit import cli

    parser = cli.COMMANDS["diagnose"].add(subparsers)
    parser.set_defaults(func=run)
    return parser


def add_arguments(parser):
    """Adds the `diagnose` arguments to `parser`."""
    from kerastoolkit import cli

    return cli.add_diagnose_arguments(parser)


def _error(message):
    print(f"kerastoolkit: error: {message}", file=sys.stderr)
    return 2


def run(args):
    """Runs `diagnose` for parsed arguments; returns the exit code.

    Exit codes: `0` the run was diagnosed (with or without findings), `2`
    the input could not be read (a one-line error on stderr).
    """
    from kerastoolkit.cli import csv_file_problem

    for path, flag in ((args.epochs, "EPOCHS.csv"), (args.steps, "--steps")):
        problem = path is not None and csv_file_problem(path, flag)
        if problem:
            return _error(problem)

    from kerastoolkit.diagnostics.curves import diagnose

    try:
        report = diagnose(epochs=args.epochs, steps=args.steps)
    except (ValueError, TypeError, OSError) as error:
        return _error(error)
    if args.json:
        summary = str(report).splitlines()[0]
        print(json.dumps({"summary": summary, **report.to_dict()}, indent=2))
    else:
        print(report)
    if args.plot:
        try:
            report.plot(args.plot)
        except OSError as error:
            return _error(f"cannot write {args.plot}: {error}")
    return 0


def main(argv=None):
    """Entry point for `python -m kerastoolkit.diagnostics.cli`."""
    from kerastoolkit import cli

    return cli.main(["diagnose", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
