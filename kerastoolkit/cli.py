"""The `kerastoolkit` command.

`kerastoolkit train` is a thin layer over the library: `kt.data.load`,
`kt.models.default_classifier`, a `kt.presets` recipe, `model.fit`,
`kt.callbacks.CurveDiagnostics` and `kt.export.saved_model`; `kerastoolkit
diagnose` is `kt.diagnostics.diagnose` on a run's CSV logs.
"""

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile

from kerastoolkit import presets
from kerastoolkit.diagnostics import cli as diagnostics_cli

# Defaults per dataset that train a good model quickly on 2 CPU cores. Kept
# here rather than in kt.data, whose import (tensorflow-datasets) `--help`
# and argument errors do not need.
TRAIN_DEFAULTS = {
    "digits": {"epochs": 30, "batch_size": 32},
    "fashion_mnist": {"epochs": 10, "batch_size": 128},
    "mnist1d": {"epochs": 40, "batch_size": 64},
}


class _Parser(argparse.ArgumentParser):
    """Errors as one line on stderr and exit status 2, no usage dump."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive_int(name, minimum=1):
    what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be {what}, got {text!r}")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{name} must be {what}, got {value}")
        return value

    return parse


def _positive_float(name):
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a positive number, got {text!r}")
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{name} must be a positive number, got {value}")
        return value

    return parse


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--validation-fraction must be a number, got {text!r}")
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(
            f"--validation-fraction must be in [0, 1), got {value}"
        )
    return value


def build_parser():
    parser = _Parser(
        prog="kerastoolkit",
        description=(
            "kerastoolkit: Keras 3 plug-ins that make training a neural network "
            "well the default. Run `kerastoolkit COMMAND --help` for a command's flags."
        ),
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    train = subparsers.add_parser(
        "train",
        help="train a classifier on an offline dataset and export a SavedModel",
        description=(
            "Train a small classifier suited to the dataset with model.fit, print its "
            "test accuracy, and export it as a SavedModel to OUT/<version>/ (versions "
            "1, 2, ... as TensorFlow Serving reads them), with the Keras model "
            "(model.keras), the per-epoch history (history.csv), the per-step losses "
            "(steps.csv), the learning-curve diagnosis (report.json) and the curves "
            "annotated with it (curves.png) beside it."
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
        type=_positive_int("--epochs"),
        metavar="N",
        help="number of epochs (default: 30 for digits, 10 for fashion_mnist, 40 for mnist1d)",
    )
    train.add_argument(
        "--batch-size",
        type=_positive_int("--batch-size"),
        metavar="B",
        help="mini-batch size (default: 32 for digits, 128 for fashion_mnist, 64 for mnist1d)",
    )
    train.add_argument(
        "--preset",
        default="adam",
        choices=presets.names(),
        help=(
            "training recipe from kt.presets: optimizer, schedule, warmup and callbacks "
            "(default: adam; the flags below override its parts)"
        ),
    )
    train.add_argument(
        "--learning-rate",
        type=_positive_float("--learning-rate"),
        metavar="LR",
        help="base learning rate (default: the preset's, 1e-3 for adam)",
    )
    train.add_argument(
        "--warmup-epochs",
        type=_positive_int("--warmup-epochs", minimum=0),
        metavar="EPOCHS",
        help="linear warmup of the learning rate from 0 over this many epochs, step by step (default: the preset's)",
    )
    train.add_argument(
        "--plateau-patience",
        type=_positive_int("--plateau-patience", minimum=0),
        metavar="EPOCHS",
        help=(
            "divide the learning rate by 10 after this many epochs without validation-loss "
            "improvement (kt.callbacks.PlateauDecay, works with schedules); 0 turns it off "
            "(default: the preset's, 4 for adam)"
        ),
    )
    train.add_argument(
        "--snapshots",
        type=_positive_int("--snapshots"),
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
        help="fraction of the training split held out for validation curves (default: 0.1)",
    )
    train.add_argument(
        "--early-stopping-patience",
        type=_positive_int("--early-stopping-patience", minimum=0),
        metavar="EPOCHS",
        help=(
            "stop when the validation loss has not improved for this many epochs and "
            "restore the best weights (keras.callbacks.EarlyStopping); 0 turns it off "
            "(default: the preset's, 8 for adam)"
        ),
    )
    train.add_argument(
        "--out",
        metavar="DIR",
        help="export root; the model goes to OUT/<next version>/ (default: savedmodels/DATASET)",
    )
    train.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default: 0)")
    train.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=1,
        help="Keras fit verbosity: 0 silent, 1 progress bar, 2 one line per epoch (default: 1)",
    )
    train.set_defaults(run=run_train)
    diagnostics_cli.add_parser(subparsers).set_defaults(run=diagnostics_cli.run)
    return parser


def _fail(message, code=1):
    print(f"kerastoolkit: error: {message}", file=sys.stderr)
    return code


def _check_writable(root):
    """Creates `root` if needed and checks a file can be written there."""
    try:
        os.makedirs(root, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".write-check-"):
            pass
    except OSError as error:
        return f"cannot write to output directory {root!r}: {error.strerror or error}"
    return None


def _recipe(kt, args, has_validation):
    """The preset with the command line's overrides applied."""
    recipe = kt.presets.get(args.preset)
    config = dict(recipe.config)
    if args.learning_rate is not None:
        config["learning_rate"] = args.learning_rate
        config["reference_batch_size"] = None  # the rate given is the rate used
    if args.warmup_epochs is not None:
        config["warmup_epochs"] = args.warmup_epochs
    if args.plateau_patience is not None:
        config["plateau"] = (
            dict(config["plateau"] or {"monitor": "val_loss", "factor": 0.1}, patience=args.plateau_patience)
            if args.plateau_patience
            else None
        )
    if args.early_stopping_patience is not None:
        config["early_stopping"] = (
            dict(
                config["early_stopping"] or {"monitor": "val_loss", "restore_best_weights": True},
                patience=args.early_stopping_patience,
            )
            if args.early_stopping_patience
            else None
        )
    if args.snapshots is not None:
        # The cycles restart from the base rate: no other schedule, no warmup
        # (it would shift the cycles off the epoch ends), no early stopping.
        config.update(snapshots=args.snapshots, schedule="cyclic_cosine", warmup_epochs=0, early_stopping=None)
    if not has_validation:  # nothing to monitor
        config.update(plateau=None, early_stopping=None)
    return dataclasses.replace(recipe, config=config)


def run_train(args):
    if args.snapshots and args.warmup_epochs:
        return _fail("--snapshots and --warmup-epochs do not combine: a warmup shifts the snapshot cycles", 2)
    out = args.out or os.path.join("savedmodels", args.dataset)
    problem = _check_writable(out)
    if problem:
        return _fail(problem, 2)
    defaults = TRAIN_DEFAULTS[args.dataset]
    epochs = args.epochs or defaults["epochs"]
    if args.snapshots and args.snapshots > epochs:
        return _fail(f"--snapshots {args.snapshots} needs at least as many epochs, got --epochs {epochs}", 2)
    batch_size = args.batch_size or defaults["batch_size"]

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np

    import kerastoolkit as kt

    keras.utils.set_random_seed(args.seed)
    meta = kt.data.info(args.dataset)
    try:
        x_train, y_train = kt.data.load(args.dataset, "train", as_numpy=True)
        x_test, y_test = kt.data.load(args.dataset, "test", as_numpy=True)
    except FileNotFoundError as error:
        return _fail(str(error))
    n_val = int(round(len(x_train) * args.validation_fraction))
    validation = (x_train[:n_val], y_train[:n_val]) if n_val else None
    x_fit = x_train[n_val:]
    # A tf.data pipeline reshuffled every epoch (fit(numpy, shuffle=True) after
    # keras.utils.set_random_seed feeds the same order every epoch on TF).
    train_data = kt.data.load(args.dataset, f"train[{n_val}:]", batch_size=batch_size, seed=args.seed)

    model = kt.models.default_classifier(
        meta.input_shape, meta.num_classes, normalization_data=x_fit, name=f"{args.dataset}_classifier"
    )
    recipe = _recipe(kt, args, has_validation=validation is not None)
    steps_per_epoch = -(-len(x_fit) // batch_size)
    model.compile(
        optimizer=recipe.optimizer(steps_per_epoch=steps_per_epoch, epochs=epochs, batch_size=batch_size),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    # Logs and snapshots go to a hidden staging folder until the export exists
    # (TensorFlow Serving ignores non-numeric folder names); removed at the end
    # or on error.
    with tempfile.TemporaryDirectory(prefix=".train-", dir=out) as staging:
        callbacks = recipe.callbacks(epochs=epochs, directory=os.path.join(staging, "snapshots"))
        # Last, so that its per-epoch log (the CSVLogger format) has the effective
        # learning rate PlateauDecay writes into the logs.
        diagnostics = kt.callbacks.CurveDiagnostics(log_dir=os.path.join(staging, "diagnostics"))
        callbacks.append(diagnostics)
        overrides = [
            f"--{flag.replace('_', '-')} {getattr(args, flag)}"
            for flag in ("learning_rate", "warmup_epochs", "plateau_patience", "early_stopping_patience", "snapshots")
            if getattr(args, flag) is not None
        ]
        print(f"preset {recipe.name}: {kt.presets.get(recipe.name).description}")
        if overrides:
            print(f"  overridden by {', '.join(overrides)}")
        model.fit(
            train_data,
            epochs=epochs,
            validation_data=validation,
            shuffle=False,  # the dataset reshuffles itself every epoch
            callbacks=callbacks,
            verbose=args.verbose,
        )
        snapshot = next((c for c in callbacks if isinstance(c, kt.callbacks.SnapshotEnsemble)), None)
        if snapshot is not None:
            model = snapshot.ensemble  # exported and saved as it is, uncompiled
            print(f"snapshot ensemble of {len(model.members)} models")
        probabilities = model.predict(x_test, batch_size=256, verbose=0)
        test_accuracy = float(np.mean(np.argmax(probabilities, axis=-1) == y_test))
        test_loss = float(
            keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y_test, probabilities))
        )
        print(f"test accuracy: {test_accuracy:.4f}  test loss: {test_loss:.4f}  ({len(y_test)} examples)")

        version_dir = kt.export.saved_model(model, out)
        model.save(os.path.join(version_dir, "model.keras"))  # to fine-tune or resume
        # The diagnosis: the per-epoch history, the per-step losses, report.json
        # and the learning curves annotated with the findings.
        for name in sorted(os.listdir(diagnostics.log_dir)):
            target = "history.csv" if name == "epochs.csv" else name
            os.replace(os.path.join(diagnostics.log_dir, name), os.path.join(version_dir, target))
        print(diagnostics.report)
        print(
            f"SavedModel: {version_dir}  (model.keras, history.csv, curves.png, "
            "report.json, steps.csv beside it)"
        )
        return 0


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
