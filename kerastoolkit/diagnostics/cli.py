"""The `kerastoolkit diagnose` subcommand.

```
kerastoolkit diagnose EPOCHS.csv [--steps STEPS.csv] [--json] [--plot OUT.png]
```

Its arguments are defined in `kerastoolkit.cli` (which must not import this
package: `kerastoolkit.diagnostics` imports Keras); this module runs it.
"""

import json
import os
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


def _check_readable(path, flag):
    """A one-line problem with the CSV file at `path`, or `None`."""
    if os.path.isdir(path):
        return f"{flag} {path!r} is a folder, not a CSV file (give the file inside it, e.g. {os.path.join(path, 'epochs.csv')!r})"
    if not os.path.exists(path):
        return f"{flag} {path!r}: no such file"
    try:
        with open(path, "rb") as handle:
            handle.read().decode("utf-8")
    except UnicodeDecodeError as error:
        return f"{flag} {path!r} is not a UTF-8 text file (byte {error.start}: {error.reason}); expected a CSV file"
    except OSError as error:
        return f"{flag} {path!r}: cannot read it ({error.strerror or error})"
    return None


def run(args):
    """Runs `diagnose` for parsed arguments; returns the exit code.

    Exit codes: `0` the run was diagnosed (with or without findings), `2`
    the input could not be read (a one-line error on stderr).
    """
    for path, flag in ((args.epochs, "EPOCHS.csv"), (args.steps, "--steps")):
        problem = path is not None and _check_readable(path, flag)
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
