"""The `kerastoolkit` command.

`kerastoolkit train` is a thin layer over the library: `kt.data.load`,
`kt.models.default_classifier`, a `kt.presets` recipe, `model.fit`,
`kt.callbacks.CurveDiagnostics` and `kt.export.saved_model`; `kerastoolkit
diagnose` is `kt.diagnostics.diagnose` on a run's CSV logs.

How this module is built, so that it stays quick and quiet:
- Nothing heavy at import time. Importing this module imports neither Keras
  nor TensorFlow (the console script makes `import kerastoolkit` defer its
  sub-packages, see `kerastoolkit/__init__.py`), so `--help`, `--version` and
  argument errors answer at once. A command's code is named in `COMMANDS` as
  `"module:function"` and imported only when that command runs.
- Every flag is checked where it is parsed: its `type=` is one of the
  checkers below (`_integer`, `_number`, ...), whose message argparse prefixes
  with "argument --flag: ". Checks that involve several flags or the dataset's
  size live in the command's `validate` function, which runs right after
  parsing, before anything is imported or written.
- TensorFlow's and absl's logs are silenced before TensorFlow is imported
  (`_import_tensorflow_quietly`) unless `KERASTOOLKIT_TF_LOGS=1`.

Adding a flag is one `add_argument` call in the command's `_add_*` function;
adding a command is one `_add_*` function and one `COMMANDS` entry.
"""

import argparse
import contextlib
import dataclasses
import importlib
import math
import os
import shutil
import sys
import tempfile

PROG = "kerastoolkit"

# Set to 1 to see TensorFlow's and absl's own log lines (hidden by default).
TF_LOGS_ENV = "KERASTOOLKIT_TF_LOGS"

# Per dataset: defaults that train a good model quickly on 2 CPU cores, and
# the size of the training split (for checks at parse time). Kept here rather
# than read from kt.data, whose import (TensorFlow) `--help` does not need;
# tests/test_cli.py checks the sizes against kt.data.
TRAIN_DEFAULTS = {
    "digits": {"epochs": 30, "batch_size": 32, "train_examples": 1437},
    "fashion_mnist": {"epochs": 10, "batch_size": 128, "train_examples": 60000},
    "mnist1d": {"epochs": 40, "batch_size": 64, "train_examples": 4000},
}
# The fewest examples a training or validation split may hold (10 per class):
# below that the curves, the diagnosis and the test accuracy mean little.
MIN_SPLIT_EXAMPLES = 100
MAX_EPOCHS = 10_000
MAX_LEARNING_RATE = 10.0  # the top of a learning-rate range test
MAX_SEED = 2**32 - 1  # what NumPy's legacy seeding accepts
STRATEGIES = ("auto", "mirrored", "multi_worker", "none")  # kt.distribute.strategy's kinds
IMAGE_DATASETS = ("digits", "fashion_mnist")
# The names served beside the class indices (the Fashion-MNIST README's labels).
CLASS_NAMES = {
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
}


class _Parser(argparse.ArgumentParser):
    """Errors as one line `kerastoolkit: error: ...` on stderr, exit status 2."""

    def error(self, message):
        self.exit(2, f"{PROG}: error: {message}\n")


def _fail(message, code=1):
    """Prints the one-line error every failure of the command uses."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


# -- flag checkers: argparse prefixes their message with "argument --flag: " --


def _integer(minimum=1, maximum=None):
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


def _number(minimum, maximum, include_minimum=False):
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


def _fraction(text):
    """A fraction in `[0, 1)`; whether it leaves enough examples is checked later."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text!r}") from None
    if not 0.0 <= value < 1.0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text}")
    return value


def _output_folder(text):
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
    return text


# -- train -------------------------------------------------------------------


def _add_train(subparsers):
    train = subparsers.add_parser(
        "train",
        help="train a classifier on an offline dataset and export a SavedModel",
        description=(
            "Train a small classifier suited to the dataset with model.fit, print its "
            "test accuracy, and export it as a SavedModel to OUT/<version>/ (versions "
            "1, 2, ... as TensorFlow Serving reads them), with the Keras model "
            "(model.keras), the per-epoch log (epochs.csv), the per-step losses "
            "(steps.csv), the learning-curve diagnosis (report.json) and the curves "
            "annotated with it (curves.png) beside it."
        ),
        epilog=(
            f"TensorFlow's own log lines are hidden; set {TF_LOGS_ENV}=1 to see them. "
            "A run that fails leaves nothing in OUT."
        ),
    )
    train.add_argument(
        "--dataset",
        default="digits",
        choices=sorted(TRAIN_DEFAULTS),
        help="offline dataset to train on (default: digits, embedded in scikit-learn)",
    )
    train.add_argument(
        "--epochs",
        type=_integer(1, MAX_EPOCHS),
        metavar="N",
        help="number of epochs (default: 30 for digits, 10 for fashion_mnist, 40 for mnist1d)",
    )
    train.add_argument(
        "--batch-size",
        type=_integer(1),
        metavar="B",
        help=(
            "mini-batch size, at most the number of training examples "
            "(default: 32 for digits, 128 for fashion_mnist, 64 for mnist1d)"
        ),
    )
    train.add_argument(
        "--preset",
        default="adam",
        metavar="NAME|FILE",
        help=(
            "training recipe: a kt.presets name (adam, karpathy_adam, sgd_warmup_cosine, "
            "snapshot_ensemble, sgd_momentum_step, goyal_large_batch, cosine_warmup_adamw, swats, "
            "lookahead_adam, fast; `kerastoolkit presets` describes them) or a recipe file "
            "(.yaml/.json, kt.presets.load); the flags below override its parts (default: adam)"
        ),
    )
    train.add_argument(
        "--learning-rate",
        type=_number(0.0, MAX_LEARNING_RATE),
        metavar="LR",
        help="base learning rate (default: the preset's)",
    )
    train.add_argument(
        "--warmup-epochs",
        type=_integer(0, MAX_EPOCHS),
        metavar="EPOCHS",
        help=(
            "linear warmup of the learning rate from 0 over this many epochs, step by step; "
            "fewer than --epochs (default: the preset's)"
        ),
    )
    train.add_argument(
        "--plateau-patience",
        type=_integer(0, MAX_EPOCHS),
        metavar="EPOCHS",
        help=(
            "reduce the learning rate after this many epochs without validation-loss "
            "improvement (kt.callbacks.PlateauDecay, works with schedules); 0 turns it off "
            "(default: the preset's)"
        ),
    )
    train.add_argument(
        "--snapshots",
        type=_integer(1, MAX_EPOCHS),
        metavar="M",
        help=(
            "snapshot ensemble: a cyclic cosine learning rate with M cycles, one snapshot per "
            "cycle, and the averaged ensemble is what gets exported (turns early stopping off)"
        ),
    )
    train.add_argument(
        "--validation-fraction",
        type=_fraction,
        metavar="F",
        default=0.1,
        help=(
            "fraction of the training split held out for the validation curves; 0 for none. "
            f"Each split must keep at least {MIN_SPLIT_EXAMPLES} examples (default: 0.1)"
        ),
    )
    train.add_argument(
        "--early-stopping-patience",
        type=_integer(0, MAX_EPOCHS),
        metavar="EPOCHS",
        help=(
            "stop when the validation loss has not improved for this many epochs and "
            "restore the best weights (keras.callbacks.EarlyStopping); 0 turns it off "
            "(default: the preset's)"
        ),
    )
    train.add_argument(
        "--augment",
        metavar="POLICY",
        default=None,
        help=(
            "augmentation policy for the image datasets (kt.data.augmentation): geometric, "
            "photometric, other, randaugment, autoaugment or a timm string such as rand-m9-n2; "
            "none turns it off (default: the preset's, none for most)"
        ),
    )
    train.add_argument(
        "--preflight",
        action=argparse.BooleanOptionalAction,
        default=False,
        help=(
            "before training, run kt.preflight's checks (loss at initialisation, labels, inputs, "
            "data order, overfitting one batch, ...) on copies of the model and stop on errors; "
            "costs about 40%% of the default digits run (default: off)"
        ),
    )
    train.add_argument(
        "--explain",
        type=_integer(1, 64),
        metavar="N",
        help="also write explanations.png: saliency and Grad-CAM maps of the first N test images (image datasets)",
    )
    train.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="auto",
        help=(
            "tf.distribute strategy (kt.distribute.strategy): auto picks a TPU, a TF_CONFIG cluster "
            "(multi_worker), several GPUs (mirrored) or one device (none) (default: auto)"
        ),
    )
    train.add_argument(
        "--out",
        type=_output_folder,
        metavar="DIR",
        help="export root; the model goes to OUT/<next version>/ (default: savedmodels/DATASET)",
    )
    train.add_argument(
        "--seed",
        type=_integer(0, MAX_SEED),
        default=0,
        metavar="S",
        help="random seed: the same seed trains the same model (default: 0)",
    )
    train.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=None,
        help=(
            "Keras fit verbosity: 0 silent, 1 progress bar, 2 one line per epoch "
            "(default: 1 on a terminal, 2 when the output goes to a file or pipe)"
        ),
    )
    return train


def _validate_train(args, parser):
    """Checks that involve several flags or the dataset's size (before any import)."""
    defaults = TRAIN_DEFAULTS[args.dataset]
    epochs = args.epochs or defaults["epochs"]
    total = defaults["train_examples"]
    n_val = int(round(total * args.validation_fraction))
    n_fit = total - n_val
    if n_fit < MIN_SPLIT_EXAMPLES or 0 < n_val < MIN_SPLIT_EXAMPLES:
        low = MIN_SPLIT_EXAMPLES / total
        high = 1 - MIN_SPLIT_EXAMPLES / total
        parser.error(
            f"argument --validation-fraction: {args.validation_fraction:g} leaves {n_fit} training "
            f"and {n_val} validation examples of the {total} of {args.dataset}; each split needs "
            f"at least {MIN_SPLIT_EXAMPLES}: use 0 (no validation) or a fraction from "
            f"{math.ceil(low * 100) / 100:g} to {math.floor(high * 100) / 100:g}"
        )
    if args.batch_size is not None and args.batch_size > n_fit:
        parser.error(
            f"argument --batch-size: must be at most the {n_fit} training examples of "
            f"{args.dataset}, got {args.batch_size}"
        )
    if args.snapshots and args.warmup_epochs:
        parser.error("argument --snapshots: does not combine with --warmup-epochs (a warmup shifts the cycles)")
    if args.snapshots and args.snapshots > epochs:
        parser.error(f"argument --snapshots: must be at most the number of epochs ({epochs}), got {args.snapshots}")
    for flag, value in (("--augment", args.augment not in (None, "none")), ("--explain", args.explain)):
        if value and args.dataset not in IMAGE_DATASETS:
            parser.error(f"argument {flag}: needs an image dataset ({', '.join(IMAGE_DATASETS)}), got --dataset {args.dataset}")
    if args.warmup_epochs and args.warmup_epochs >= epochs:
        parser.error(
            f"argument --warmup-epochs: must be fewer than the number of epochs ({epochs}), "
            f"got {args.warmup_epochs}"
        )


# -- diagnose ----------------------------------------------------------------


def _add_diagnose(subparsers):
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
    add_diagnose_arguments(parser)
    return parser


def add_diagnose_arguments(parser):
    """Adds the `diagnose` arguments to `parser` (also `kerastoolkit.diagnostics.cli`'s)."""
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


def _validate_diagnose(args, parser):
    """The files exist and are text, checked before Keras is imported."""
    for path, flag in ((args.epochs, "EPOCHS.csv"), (args.steps, "--steps")):
        problem = path is not None and csv_file_problem(path, flag)
        if problem:
            parser.error(problem)


# -- presets and export ------------------------------------------------------


def _add_presets(subparsers):
    return subparsers.add_parser(
        "presets",
        help="list the training recipes of kt.presets, with their sources",
        description=(
            "List every named training recipe (kt.presets.list()): its name, what it does and "
            "its source. `kerastoolkit train --preset NAME` trains with one; `--preset FILE.yaml` "
            "with a recipe of your own (kt.presets.load)."
        ),
    )


def run_presets(args):
    """Prints `kt.presets.format_list()`."""
    from kerastoolkit.presets import format_list

    print(format_list())
    return 0


def _add_export(subparsers):
    parser = subparsers.add_parser(
        "export",
        help="export a saved Keras model (.keras) as a SavedModel for TensorFlow Serving",
        description=(
            "Export MODEL.keras with kt.export.saved_model to OUT/<next version>/: a "
            "serving_default signature (input 'inputs'; outputs 'probabilities', "
            "'top_k_indices', 'top_k_scores' and, with --class-names, 'top_k_class_names'), "
            "a metadata asset and TensorFlow Serving warmup requests. The export is reloaded "
            "and checked against the Keras model before the version folder appears."
        ),
    )
    parser.add_argument("model", metavar="MODEL.keras", help="a model saved with model.save('....keras')")
    parser.add_argument(
        "--out", type=_output_folder, required=True, metavar="DIR",
        help="export root; the model goes to OUT/<next version>/",
    )
    parser.add_argument(
        "--class-names", metavar="NAMES", default=None,
        help="comma-separated class names, one per output class (e.g. 0,1,2,...)",
    )
    return parser


def _validate_export(args, parser):
    if os.path.isdir(args.model) or not os.path.isfile(args.model):
        parser.error(f"argument MODEL.keras: {args.model!r} is not a file")
    if not args.model.endswith(".keras"):
        parser.error(f"argument MODEL.keras: expected a .keras file, got {args.model!r}")
    if args.class_names is not None and not all(n.strip() for n in args.class_names.split(",")):
        parser.error(f"argument --class-names: empty name in {args.class_names!r}")


def run_export(args):
    """Runs `kerastoolkit export` (`kt.export.export_keras_file`)."""
    from kerastoolkit.export import export_keras_file

    class_names = None if args.class_names is None else [n.strip() for n in args.class_names.split(",")]
    try:
        path = export_keras_file(args.model, args.out, class_names=class_names)
    except (ValueError, TypeError, RuntimeError) as error:
        return _fail(f"cannot export {args.model!r}: {error}")
    print(f"SavedModel: {path}")
    return 0


# -- the command table -------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Command:
    """One subcommand: how to add its parser, check it, and (lazily) run it.

    Attributes:
        add: `add(subparsers)` adds the subparser and returns it.
        run: `"module:function"`; `function(args)` returns the exit status. Imported
            only when the command runs.
        validate: `validate(args, parser)` checks what one flag's `type=` cannot;
            calls `parser.error`. Runs before anything heavy is imported.
        needs_tensorflow: import TensorFlow quietly before `run` (and end the
            process without the slow interpreter shutdown after it).
    """

    add: callable
    run: str
    validate: callable = None
    needs_tensorflow: bool = False


COMMANDS = {
    "train": Command(_add_train, "kerastoolkit.cli:run_train", _validate_train, needs_tensorflow=True),
    "presets": Command(_add_presets, "kerastoolkit.cli:run_presets", needs_tensorflow=True),
    "export": Command(_add_export, "kerastoolkit.cli:run_export", _validate_export, needs_tensorflow=True),
    # kerastoolkit.diagnostics imports Keras, hence TensorFlow: quietly.
    "diagnose": Command(_add_diagnose, "kerastoolkit.diagnostics.cli:run", _validate_diagnose,
                        needs_tensorflow=True),
}


def build_parser():
    """The `kerastoolkit` argument parser (imports nothing heavy)."""
    from kerastoolkit import __version__

    parser = _Parser(
        prog=PROG,
        description=(
            "kerastoolkit: Keras 3 plug-ins that make training a neural network "
            "well the default. Run `kerastoolkit COMMAND --help` for a command's flags."
        ),
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
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


# -- train: the run ------------------------------------------------------------


def _recipe(recipe, args, has_validation):
    """The recipe with the command line's overrides applied (`Recipe.replace`)."""
    config = recipe.config
    overrides = {}
    if args.learning_rate is not None:
        overrides["learning_rate"] = args.learning_rate  # the rate given is the rate used
    if args.warmup_epochs is not None:
        overrides["warmup_epochs"] = args.warmup_epochs
    if args.plateau_patience is not None:
        overrides["plateau"] = (
            dict(config["plateau"] or _library_defaults()["plateau"], patience=args.plateau_patience)
            if args.plateau_patience
            else None
        )
    if args.early_stopping_patience is not None:
        overrides["early_stopping"] = (
            dict(config["early_stopping"] or _library_defaults()["early_stopping"],
                 patience=args.early_stopping_patience)
            if args.early_stopping_patience
            else None
        )
    if args.snapshots is not None:
        # The cycles restart from the base rate: no other schedule, no warmup
        # (it would shift the cycles off the epoch ends), no early stopping.
        overrides.update(snapshots=args.snapshots, schedule="cyclic_cosine", warmup_epochs=0, early_stopping=None)
    if not has_validation:  # nothing to monitor
        overrides.update(plateau=None, early_stopping=None)
    return recipe.replace(**overrides) if overrides else recipe


def _library_defaults():
    """The library's plateau decay and early stopping (`kt.presets`), for flags that add them."""
    from kerastoolkit import presets

    return {"plateau": dict(presets.DEFAULT_PLATEAU), "early_stopping": dict(presets.DEFAULT_EARLY_STOPPING)}


def _new_folders(path):
    """The folders `os.makedirs(path)` would create, outermost first."""
    missing = []
    path = os.path.abspath(path)
    while not os.path.exists(path):
        missing.append(path)
        path = os.path.dirname(path)
    return missing[::-1]


@contextlib.contextmanager
def _staging_folder(out):
    """Yields a hidden staging folder inside `out`, removed at the end.

    TensorFlow Serving ignores non-numeric folder names, so logs and snapshots
    can sit there until the export exists. When the body fails (an error,
    Ctrl-C or SIGTERM), the folders created for `out` are removed too: a
    failed run leaves nothing behind.
    """
    import signal
    import threading

    def terminate(signum, frame):  # `kill` runs the clean-up below, as Ctrl-C does
        raise SystemExit(128 + signum)

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, terminate) if in_main_thread else None
    created = _new_folders(out)
    os.makedirs(out, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".train-", dir=out)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for folder in reversed(created):  # innermost first, only if left empty
            if os.path.isdir(folder) and not os.listdir(folder):
                os.rmdir(folder)
        raise
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    shutil.rmtree(staging, ignore_errors=True)


def run_train(args):
    """Runs `kerastoolkit train` for parsed (and validated) arguments."""
    import keras
    import numpy as np

    import kerastoolkit as kt

    try:
        recipe = kt.presets.get(args.preset)  # a name, or a recipe file (.yaml/.json)
    except (ValueError, KeyError, TypeError, OSError) as error:
        return _fail(f"argument --preset: {error}", 2)
    defaults = TRAIN_DEFAULTS[args.dataset]
    own = recipe.config["dataset"] == args.dataset  # the recipe's sizes are for its dataset
    epochs = args.epochs or (own and recipe.config["epochs"]) or defaults["epochs"]
    batch_size = args.batch_size or (own and recipe.config["batch_size"]) or defaults["batch_size"]
    verbose = args.verbose if args.verbose is not None else (1 if sys.stdout.isatty() else 2)
    out = args.out or os.path.join("savedmodels", args.dataset)
    images = args.dataset in IMAGE_DATASETS
    policy = args.augment if args.augment is not None else recipe.config["augmentation"]
    if policy == "none":
        policy = None
    if policy is not None and not images:
        return _fail(f"preset {recipe.name!r} augments images ({policy}); {args.dataset} is not images: "
                     "pass --augment none", 2)

    # Prepare the data before seeding (kt.data.prepare also leaves the random
    # state alone): the first run trains the same model as every later one.
    try:
        kt.data.prepare(args.dataset)
    except FileNotFoundError as error:
        return _fail(str(error))
    keras.utils.set_random_seed(args.seed)
    try:
        strategy = kt.distribute.strategy(args.strategy, verbose=0)
    except (ValueError, RuntimeError) as error:
        return _fail(f"argument --strategy: {error}", 2)
    if strategy.num_replicas_in_sync > 1 or args.strategy not in ("auto", "none"):
        print(f"strategy: {kt.distribute.strategy_name(strategy)}, "
              f"{strategy.num_replicas_in_sync} replica(s)")
    if not kt.distribute.is_chief():
        # Every worker trains; only the chief's files stay (removed at exit).
        task_type, index = kt.distribute.task()
        out = kt.distribute.chief_path(out)
        print(f"{task_type} {index} is not the chief: its copy of the output goes to {out}, "
              "removed at exit")
    meta = kt.data.info(args.dataset)
    # Images stay raw (uint8): the model standardizes them inside, so the
    # exported SavedModel serves the pixels as they come.
    x_train, y_train = kt.data.load(args.dataset, "train", as_numpy=True, raw=images)
    x_test, y_test = kt.data.load(args.dataset, "test", as_numpy=True, raw=images)
    n_val = int(round(len(x_train) * args.validation_fraction))
    validation = (x_train[:n_val], y_train[:n_val]) if n_val else None
    x_fit, y_fit = x_train[n_val:], y_train[n_val:]
    # A tf.data pipeline reshuffled every epoch (fit(numpy, shuffle=True) after
    # keras.utils.set_random_seed feeds the same order every epoch on TF).
    train_data = kt.data.load(args.dataset, f"train[{n_val}:]", batch_size=batch_size, seed=args.seed, raw=images)

    description = recipe.description
    recipe = _recipe(recipe, args, has_validation=validation is not None)
    steps_per_epoch = -(-len(x_fit) // batch_size)
    previous_policy = keras.mixed_precision.global_policy()
    if recipe.config["dtype_policy"]:
        keras.mixed_precision.set_global_policy(recipe.config["dtype_policy"])
    try:
        with strategy.scope():
            augmentation = None
            if policy is not None:
                try:
                    augmentation = kt.data.augmentation_for(args.dataset, policy, raw=images, seed=args.seed)
                except ValueError as error:
                    return _fail(f"argument --augment: {error}", 2)
            model = kt.models.default_classifier(
                meta.input_shape, meta.num_classes, normalization_data=x_fit,
                name=f"{args.dataset}_classifier", augmentation=augmentation, dropout=recipe.config["dropout"],
            )
            recipe.compile(model, steps_per_epoch=steps_per_epoch, epochs=epochs, batch_size=batch_size)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    if args.preflight:
        report = kt.preflight.preflight_for_cli(model, x_fit, y_fit, batch_size=batch_size, shuffle=True)
        if report.errors:
            return _fail("preflight found errors (above): fix them, or train without --preflight")
    with _staging_folder(out) as staging:
        callbacks = recipe.callbacks(epochs=epochs, directory=os.path.join(staging, "snapshots"), data=x_fit)
        # Last, so that its per-epoch log (the CSVLogger format) has the effective
        # learning rate PlateauDecay writes into the logs.
        diagnostics = kt.callbacks.CurveDiagnostics(log_dir=os.path.join(staging, "diagnostics"))
        callbacks.append(diagnostics)
        overrides = [
            f"--{flag.replace('_', '-')} {getattr(args, flag)}"
            for flag in ("learning_rate", "warmup_epochs", "plateau_patience", "early_stopping_patience",
                         "snapshots", "augment")
            if getattr(args, flag) is not None
        ]
        print(f"preset {recipe.name}: {description}")
        if overrides:
            print(f"  overridden by {', '.join(overrides)}")
        sys.stdout.flush()
        model.fit(
            train_data,
            epochs=epochs,
            validation_data=validation,
            shuffle=False,  # the dataset reshuffles itself every epoch
            callbacks=callbacks,
            verbose=verbose,
        )
        snapshot = next((c for c in callbacks if isinstance(c, kt.callbacks.SnapshotEnsemble)), None)
        if snapshot is not None:
            model = snapshot.ensemble  # exported and saved as it is, uncompiled
            print(f"snapshot ensemble of {len(model.members)} models")
        probabilities = model.predict(x_test, batch_size=256, verbose=0)
        test_accuracy = float(np.mean(np.argmax(probabilities, axis=-1) == y_test))
        test_loss = float(keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y_test, probabilities)))
        print(f"test accuracy: {test_accuracy:.4f}  test loss: {test_loss:.4f}  ({len(y_test)} examples)")

        version_dir = kt.export.saved_model(
            model, out,
            class_names=CLASS_NAMES.get(args.dataset, [str(c) for c in range(meta.num_classes)]),
            metadata={
                "dataset": args.dataset, "recipe": recipe, "seed": args.seed, "epochs": epochs,
                "batch_size": batch_size, "augmentation": policy,
                "metrics": {"test_accuracy": test_accuracy, "test_loss": test_loss},
            },
        )
        model.save(os.path.join(version_dir, "model.keras"))  # to fine-tune or resume
        # The diagnosis beside it, under the names CurveDiagnostics gives its
        # files: epochs.csv, steps.csv, report.json, curves.png (statistics.json
        # when statistics are recorded).
        written = sorted(os.listdir(diagnostics.log_dir))
        for name in written:
            os.replace(os.path.join(diagnostics.log_dir, name), os.path.join(version_dir, name))
        if args.explain:
            kt.diagnostics.explain(model, x_test[: args.explain], os.path.join(version_dir, "explanations.png"),
                                   max_images=args.explain)
            written.append("explanations.png")
        print(diagnostics.report)
        print(f"SavedModel: {version_dir}  (model.keras, {', '.join(sorted(written))} beside it)")
    return 0


# -- entry point ---------------------------------------------------------------


def _run_target(target):
    module, function = target.split(":")
    return getattr(importlib.import_module(module), function)


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
    status = _run_target(command.run)(args)
    if argv is None and command.needs_tensorflow:
        from kerastoolkit.distribute.cluster import remove_worker_files

        remove_worker_files()  # a non-chief worker's copies (os._exit skips atexit)
        _exit_now(status)
    return status


if __name__ == "__main__":
    sys.exit(main())
