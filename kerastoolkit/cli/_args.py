"""What every subcommand's parser shares: the one-line errors and the flag checkers.

A checker is a flag's `type=`: argparse prefixes its message with
"argument --flag: ", so every bad value gets one line such as
`kerastoolkit: error: argument --epochs: must be an integer from 1 to 10,000, got 'inf'`
and exit status 2, before anything heavy is imported.
"""

import argparse
import math
import os
import tempfile
import sys

PROG = "kerastoolkit"

# Set to 1 to see TensorFlow's and absl's own log lines (hidden by default).
TF_LOGS_ENV = "KERASTOOLKIT_TF_LOGS"


class Parser(argparse.ArgumentParser):
    """Errors as one line `kerastoolkit: error: ...` on stderr, exit status 2."""

    def error(self, message):
        self.exit(2, f"{PROG}: error: {message}\n")


def fail(message, code=1):
    """Prints the one-line error every failure of the command uses."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


# -- flag checkers --------------------------------------------------------------


def integer(minimum=1, maximum=None):
    """An integer in `[minimum, maximum]`."""
    if maximum is None:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    else:
        what = f"an integer from {minimum} to {maximum:,}"

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
        return value

    parse.__name__ = "integer"  # argparse names the type in some messages
    return parse


def number(minimum, maximum, include_minimum=False):
    """A finite number in `(minimum, maximum]` (or `[minimum, maximum]`)."""
    low = "[" if include_minimum else "("
    what = f"a finite number in {low}{minimum:g}, {maximum:g}]"

    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        too_low = value < minimum if include_minimum else value <= minimum
        if not math.isfinite(value) or too_low or value > maximum:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


def fraction(text):
    """A fraction in `[0, 1)`; whether it leaves enough examples is checked later."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text!r}") from None
    if not 0.0 <= value < 1.0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text}")
    return value


def output_folder(text):
    """A folder that exists or can be created: not a file, and writable."""
    if not text:
        raise argparse.ArgumentTypeError("must name a folder, got ''")
    path = os.path.abspath(text)
    if os.path.exists(path) and not os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"{text!r} is a file, not a folder")
    existing = path
    while not os.path.exists(existing):  # the deepest folder that exists
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise argparse.ArgumentTypeError(f"cannot create {text!r}: {existing!r} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot write to {text!r}: {existing!r} is not writable")
    if hasattr(os, "statvfs") and os.statvfs(existing).f_flag & os.ST_RDONLY:
        raise argparse.ArgumentTypeError(f"cannot write to {text!r}: {existing!r} is on a read-only file system")
    # The permission bits do not tell everything (root passes them; /proc and
    # similar file systems refuse folders): create an empty folder there and
    # remove it, before any import or training.
    try:
        probe = tempfile.mkdtemp(prefix=".kerastoolkit-probe-", dir=existing)
    except OSError as error:
        raise argparse.ArgumentTypeError(
            f"cannot write to {text!r}: {existing!r} refuses new folders ({error.strerror or error})") from None
    os.rmdir(probe)
    return text

def csv_file_problem(path, flag):
    """A one-line problem with the CSV file at `path` (a folder, not UTF-8...), or `None`."""
    if os.path.isdir(path):
        example = os.path.join(path, "epochs.csv")
        return f"{flag} {path!r} is a folder, not a CSV file (give the file inside it, e.g. {example!r})"
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


def plot_path_problem(path):
    """A one-line problem with `path` as a PNG to write (a folder, no `.png`), or `None`."""
    if os.path.isdir(path) or path.endswith(("/", os.sep)):
        return f"{path!r} is a folder; give the PNG file to write, e.g. {os.path.join(path, 'curves.png')!r}"
    if not path.lower().endswith(".png"):
        return f"must be a file name ending in .png, got {path!r}"
    return None
