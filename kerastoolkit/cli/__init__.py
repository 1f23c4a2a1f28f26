"""The `kerastoolkit` command: the top layer of the package.

One module per subcommand (`train.py`, `presets.py`, `export.py`,
`diagnose.py`), each with `add(subparsers)`, `validate(args, parser)` and
`run(args)`; `_args.py` holds what their parsers share.

How it is built, so that it stays quick and quiet:
- Nothing heavy at import time. Importing this package imports neither Keras
  nor TensorFlow (the console script makes `import kerastoolkit` defer its
  sub-packages, see `kerastoolkit/__init__.py`), so `--help`, `--version` and
  argument errors answer at once. A command's `run` imports what it uses;
  before it runs, `main` imports every sub-package that registers Keras
  objects, so a `.keras` file with toolkit objects loads whatever the command.
- Every flag is checked where it is parsed: its `type=` is one of the
  checkers in `_args.py`, whose message argparse prefixes with
  "argument --flag: ". Checks that involve several flags or the dataset's
  size live in the command's `validate`, which runs right after parsing,
  before anything is imported or written.
- TensorFlow's and absl's logs are silenced before TensorFlow is imported
  (`_import_tensorflow_quietly`) unless `KERASTOOLKIT_TF_LOGS=1`.

Adding a flag is one `add_argument` call in the command's `add`; adding a
command is one module and one `COMMANDS` entry.
"""

import contextlib
import dataclasses
import os
import sys

from kerastoolkit.cli import diagnose
from kerastoolkit.cli import distill
from kerastoolkit.cli import export
from kerastoolkit.cli import presets
from kerastoolkit.cli import train
from kerastoolkit.cli._args import PROG
from kerastoolkit.cli._args import TF_LOGS_ENV
from kerastoolkit.cli._args import Parser
from kerastoolkit.cli.train import TRAIN_DEFAULTS  # noqa: F401  (the datasets' defaults, tested)


# -- the command table -------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Command:
    """One subcommand: how to add its parser, check it, and (lazily) run it.

    Attributes:
        add: `add(subparsers)` adds the subparser and returns it.
        run: `run(args)` returns the exit status; it imports what it needs
            (Keras, TensorFlow) itself.
        validate: `validate(args, parser)` checks what one flag's `type=` cannot;
            calls `parser.error`. Runs before anything heavy is imported.
        needs_tensorflow: import TensorFlow quietly before `run` (and end the
            process without the slow interpreter shutdown after it).
    """

    add: callable
    run: callable
    validate: callable = None
    needs_tensorflow: bool = False


COMMANDS = {
    "train": Command(train.add, train.run, train.validate, needs_tensorflow=True),
    "presets": Command(presets.add, presets.run, needs_tensorflow=True),
    "export": Command(export.add, export.run, export.validate, needs_tensorflow=True),
    # kerastoolkit.diagnostics imports Keras, hence TensorFlow: quietly.
    "diagnose": Command(diagnose.add, diagnose.run, diagnose.validate, needs_tensorflow=True),
    "distill": Command(distill.add, distill.run, distill.validate, needs_tensorflow=True),
}


def build_parser():
    """The `kerastoolkit` argument parser (imports nothing heavy)."""
    from kerastoolkit import __version__

    parser = Parser(
        prog=PROG,
        description=(
            "kerastoolkit: Keras 3 plug-ins that make training a neural network "
            "well the default. Run `kerastoolkit COMMAND --help` for a command's flags."
        ),
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, command in COMMANDS.items():
        command.add(subparsers).set_defaults(command=name)
    return parser


# -- quiet TensorFlow ----------------------------------------------------------


@contextlib.contextmanager
def _stderr_fd_silenced():
    """Sends file descriptor 2 to /dev/null: C++ logs printed before absl's setup."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def _import_tensorflow_quietly():
    """Imports TensorFlow without its start-up log lines, unless `KERASTOOLKIT_TF_LOGS=1`.

    `TF_CPP_MIN_LOG_LEVEL` alone does not hide the lines TensorFlow's C++ code
    prints before absl is initialised (oneDNN, "Could not find cuda drivers",
    the CPU-feature guard) nor cuInit's error on a machine without a GPU, so
    file descriptor 2 goes to /dev/null while TensorFlow loads and looks for
    devices. Python errors still show: they are raised after it is restored.
    """
    if os.environ.get(TF_LOGS_ENV, "0") not in ("", "0"):
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import logging

    with _stderr_fd_silenced():
        import tensorflow as tf

        tf.config.list_physical_devices()  # cuInit runs (and complains) here
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


# -- entry point ---------------------------------------------------------------


def _exit_now(status):
    """Ends the process at once, skipping the interpreter's shutdown.

    After training, a normal exit spends 2-6 s (more on a busy machine) in
    Python's final garbage collection of TensorFlow's and Keras's objects
    (traced functions, graphs, the exported model) and in TensorFlow's C++
    teardown, all after the last line is printed. Everything the command
    writes is closed by then, so it flushes its streams and logging and
    leaves with `os._exit`.
    """
    import logging

    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(status)


def main(argv=None):
    """Runs the `kerastoolkit` command; returns its exit status.

    Args:
        argv: the arguments after the command name. Defaults to `None`: the
            process's own (`sys.argv[1:]`); then a command that imported
            TensorFlow ends the process itself, without the slow shutdown.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    command = COMMANDS[args.command]
    if command.validate is not None:
        command.validate(args, parser)
    if command.needs_tensorflow:
        _import_tensorflow_quietly()
        import kerastoolkit

        kerastoolkit._import_subpackages()  # registers every Keras object the toolkit defines
    try:
        status = command.run(args)
    except KeyboardInterrupt:  # the command's own clean-up ran on the way out
        print(f"{PROG}: interrupted", file=sys.stderr)
        status = 130
    if argv is None and command.needs_tensorflow:
        from kerastoolkit.distribute.cluster import remove_worker_files

        remove_worker_files()  # a non-chief worker's copies (os._exit skips atexit)
        _exit_now(status)
    return status

