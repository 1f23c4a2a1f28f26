"""`kerastoolkit train`: a thin layer over the library.

`kt.data.load`, `kt.models.default_classifier`, a `kt.presets` recipe,
`model.fit`, `kt.callbacks.CurveDiagnostics` and `kt.export.saved_model`.
Nothing heavy is imported until `run`.
"""

import argparse
import contextlib
import math
import os
import shutil
import sys
import tempfile

from kerastoolkit.cli._args import TF_LOGS_ENV
from kerastoolkit.cli._args import fail
from kerastoolkit.cli._args import fraction
from kerastoolkit.cli._args import integer
from kerastoolkit.cli._args import number
from kerastoolkit.cli._args import output_folder

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


def add(subparsers):
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
    add_training_flags(train)
    train.add_argument(
        "--snapshots",
        type=integer(1, MAX_EPOCHS),
        metavar="M",
        help=(
            "snapshot ensemble: a cyclic cosine learning rate with M cycles, one snapshot per "
            "cycle, and the averaged ensemble is what gets exported (turns early stopping off)"
        ),
    )
    return train


def add_training_flags(train, out_default="savedmodels/DATASET"):
    """Adds the flags `train` and `distill` share (dataset, recipe, output) to a subparser."""
    train.add_argument(
        "--dataset",
        default="digits",
        choices=sorted(TRAIN_DEFAULTS),
        help="offline dataset to train on (default: digits, embedded in scikit-learn)",
    )
    train.add_argument(
        "--epochs",
        type=integer(1, MAX_EPOCHS),
        metavar="N",
        help=(
            "number of epochs (default: the preset's own, else 30 for digits, 10 for fashion_mnist, "
            "40 for mnist1d)"
        ),
    )
    train.add_argument(
        "--batch-size",
        type=integer(1),
        metavar="B",
        help=(
            "mini-batch size, at most the number of training examples (default: the preset's own, "
            "else 32 for digits, 128 for fashion_mnist, 64 for mnist1d)"
        ),
    )
    train.add_argument(
        "--preset",
        default="adam",
        metavar="NAME|FILE",
        help=(
            "training recipe: a kt.presets name (adam, karpathy_adam, sgd_warmup_cosine, "
            "snapshot_ensemble, sgd_momentum_step, goyal_large_batch, cosine_warmup_adamw, swats, "
            "lookahead_adam, fast, fast_float32, accurate; `kerastoolkit presets` describes them) or a "
            "recipe file (.yaml/.json, kt.presets.load); the flags below override its parts (default: adam)"
        ),
    )
    train.add_argument(
        "--learning-rate",
        type=number(0.0, MAX_LEARNING_RATE),
        metavar="LR",
        help="base learning rate (default: the preset's)",
    )
    train.add_argument(
        "--warmup-epochs",
        type=integer(0, MAX_EPOCHS),
        metavar="EPOCHS",
        help=(
            "linear warmup of the learning rate from 0 over this many epochs, step by step; "
            "fewer than --epochs (default: the preset's)"
        ),
    )
    train.add_argument(
        "--plateau-patience",
        type=integer(0, MAX_EPOCHS),
        metavar="EPOCHS",
        help=(
            "reduce the learning rate after this many epochs without validation-loss "
            "improvement (kt.callbacks.PlateauDecay, works with schedules); 0 turns it off "
            "(default: the preset's)"
        ),
    )
    train.add_argument(
        "--validation-fraction",
        type=fraction,
        metavar="F",
        default=0.1,
        help=(
            "fraction of the training split held out for the validation curves; 0 for none. "
            f"Each split must keep at least {MIN_SPLIT_EXAMPLES} examples (default: 0.1)"
        ),
    )
    train.add_argument(
        "--early-stopping-patience",
        type=integer(0, MAX_EPOCHS),
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
        default=True,
        help=(
            "before training, run kt.preflight's checks (inputs, labels, loss at initialisation, "
            "the preset's own optimizer lowering the loss, overfitting one batch, a learnable "
            "signal, ...) on a copy of the model and stop on errors; a few seconds, under 10%% of "
            "the default digits run (default: on; --no-preflight skips them)"
        ),
    )
    train.add_argument(
        "--self-healing",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=(
            "roll training back from a NaN, a loss spike or a divergence to an in-memory snapshot, "
            "skip the batches in between and, when the fault comes back, lower the learning rate "
            "(kt.callbacks.SelfHealing; the report says so) (default: the preset's, on)"
        ),
    )
    train.add_argument(
        "--explain",
        type=integer(1, 64),
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
        type=output_folder,
        metavar="DIR",
        help=f"export root; the model goes to OUT/<next version>/ (default: {out_default})",
    )
    train.add_argument(
        "--seed",
        type=integer(0, MAX_SEED),
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


def validate(args, parser):
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
    if args.self_healing is not None and args.self_healing != (config["self_healing"] is not None):
        overrides["self_healing"] = {} if args.self_healing else None
    if not has_validation:  # nothing to monitor
        overrides.update(plateau=None, early_stopping=None)
    return recipe.replace(**overrides) if overrides else recipe


def _library_defaults():
    """The library's plateau decay and early stopping (`kt.presets`), for flags that add them."""
    from kerastoolkit import presets

    return {"plateau": dict(presets.DEFAULT_PLATEAU), "early_stopping": dict(presets.DEFAULT_EARLY_STOPPING)}


class OutputFolderError(OSError):
    """`--out` cannot be created or written (a read-only file system, no permission)."""


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
    try:
        os.makedirs(out, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".train-", dir=out)
    except OSError as error:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
        raise OutputFolderError(f"argument --out: cannot write to {out!r}: {error.strerror or error}") from None
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


def run(args):
    """Runs `kerastoolkit train` for parsed (and validated) arguments."""
    import keras

    import kerastoolkit as kt

    try:
        recipe = kt.presets.get(args.preset)  # a name, or a recipe file (.yaml/.json)
    except (ValueError, KeyError, TypeError, OSError) as error:
        return fail(f"argument --preset: {error}", 2)
    sizes = _sizes(recipe, args)
    if isinstance(sizes, int):
        return sizes
    epochs, batch_size = sizes
    verbose = args.verbose if args.verbose is not None else (1 if sys.stdout.isatty() else 2)
    out = args.out or os.path.join("savedmodels", args.dataset)
    images = args.dataset in IMAGE_DATASETS
    policy = args.augment if args.augment is not None else recipe.config["augmentation"]
    if policy == "none":
        policy = None
    if policy is not None and not images:
        return fail(f"preset {recipe.name!r} augments images ({policy}); {args.dataset} is not images: "
                     "pass --augment none", 2)

    started = _start(args, out)
    if isinstance(started, int):
        return started
    strategy, out = started
    data = _load(args, batch_size)
    meta, x_fit, y_fit, validation, train_data = data.meta, data.x_fit, data.y_fit, data.validation, data.train

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
                    augmentation = kt.data.augmentation_for(args.dataset, policy, raw=images, seed=args.seed,
                                                            **_policy_options(recipe, policy))
                except ValueError as error:
                    return fail(f"argument --augment: {error}", 2)
                augmentation, policy = _unless_empty(augmentation, policy, args.dataset)
            model = kt.models.default_classifier(
                meta.input_shape, meta.num_classes, normalization_data=x_fit,
                name=f"{args.dataset}_classifier", augmentation=augmentation, dropout=recipe.config["dropout"],
            )
            recipe.compile(model, steps_per_epoch=steps_per_epoch, epochs=epochs, batch_size=batch_size)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    if args.preflight:
        report = kt.preflight.check(model, (x_fit, y_fit), batch_size=batch_size, shuffle=True, epochs=epochs)
        print(report)
        if report.errors:
            return fail("preflight found errors (above): fix them, or train with --no-preflight")
    try:
        with _staging_folder(out) as staging:
            callbacks = recipe.callbacks(epochs=epochs, directory=os.path.join(staging, "snapshots"), data=x_fit)
            # Last, so that its per-epoch log (the CSVLogger format) has the effective
            # learning rate PlateauDecay writes into the logs.
            diagnostics = kt.callbacks.CurveDiagnostics(log_dir=os.path.join(staging, "diagnostics"),
                                                        early_stopping=early_stopping_of(callbacks))
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
            history = model.fit(
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
            _export_and_diagnose(model, out, args, data, diagnostics, {
                "dataset": args.dataset, "recipe": recipe, "seed": args.seed, "epochs": epochs,
                "epochs_trained": len(history.epoch),  # fewer when early stopping ended the run
                "batch_size": batch_size, "augmentation": policy,
            })
    except OutputFolderError as error:
        return fail(str(error), 2)
    except kt.callbacks.SelfHealingError as error:  # the fault kept coming back: nothing exported
        if diagnostics.report is not None:
            print(diagnostics.report)
        return fail(f"training failed: {error}")
    return 0


def early_stopping_of(callbacks):
    """The `keras.callbacks.EarlyStopping` among `callbacks`, for the diagnosis to judge the weights it keeps."""
    import keras

    return next((c for c in callbacks if isinstance(c, keras.callbacks.EarlyStopping)), None)


def _sizes(recipe, args):
    """`(epochs, batch_size)`: the flags', else the recipe's own, else the dataset's defaults.

    Returns an exit status instead when the recipe's own sizes do not fit the
    flags or the data (the flags alone were checked in `validate`).
    """
    defaults = TRAIN_DEFAULTS[args.dataset]
    epochs = args.epochs or recipe.config["epochs"] or defaults["epochs"]
    batch_size = args.batch_size or recipe.config["batch_size"] or defaults["batch_size"]
    n_fit = defaults["train_examples"] - int(round(defaults["train_examples"] * args.validation_fraction))
    if batch_size > n_fit:
        return fail(f"preset {recipe.name!r} trains with batches of {batch_size}, more than the {n_fit} "
                    f"training examples of {args.dataset}: pass --batch-size", 2)
    for flag, value in (("warmup-epochs", args.warmup_epochs), ("snapshots", getattr(args, "snapshots", None))):
        if value and (value >= epochs if flag == "warmup-epochs" else value > epochs):
            limit = "fewer than" if flag == "warmup-epochs" else "at most"
            return fail(f"argument --{flag}: must be {limit} the number of epochs ({epochs}, preset "
                        f"{recipe.name!r}'s own), got {value}", 2)
    return epochs, batch_size


def _policy_options(recipe, policy):
    """The recipe's `augmentation_options` when `policy` is the recipe's own policy (not --augment's)."""
    return dict(recipe.config["augmentation_options"]) if policy == recipe.config["augmentation"] else {}


def _unless_empty(augmentation, policy, dataset):
    """`(augmentation, policy)`, or `(None, None)` said aloud when nothing of the policy suits the dataset."""
    if augmentation is not None and not augmentation.layers:  # e.g. flips only, and digits are not flipped
        print(f"augmentation {policy}: none of its operations suits {dataset} with these settings; "
              "training without augmentation")
        return None, None
    return augmentation, policy


def _start(args, out):
    """Prepares the dataset, seeds, and picks the strategy; returns `(strategy, out)` or an exit status."""
    import keras

    import kerastoolkit as kt

    # Prepare the data before seeding (kt.data.prepare also leaves the random
    # state alone): the first run trains the same model as every later one.
    try:
        kt.data.prepare(args.dataset)
    except FileNotFoundError as error:
        return fail(str(error))
    keras.utils.set_random_seed(args.seed)
    try:
        strategy = kt.distribute.strategy(args.strategy, verbose=0)
    except (ValueError, RuntimeError) as error:
        return fail(f"argument --strategy: {error}", 2)
    if strategy.num_replicas_in_sync > 1 or args.strategy not in ("auto", "none"):
        print(f"strategy: {kt.distribute.strategy_name(strategy)}, "
              f"{strategy.num_replicas_in_sync} replica(s)")
    if not kt.distribute.is_chief():
        # Every worker trains; only the chief's files stay (removed at exit).
        task_type, index = kt.distribute.task()
        out = kt.distribute.chief_path(out)
        print(f"{task_type} {index} is not the chief: its copy of the output goes to {out}, "
              "removed at exit")
    return strategy, out


def _load(args, batch_size):
    """The dataset's splits: `meta`, `x_fit`, `y_fit`, `validation`, `x_test`, `y_test`, `train`."""
    import types

    import kerastoolkit as kt

    images = args.dataset in IMAGE_DATASETS
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
    train = kt.data.load(args.dataset, f"train[{n_val}:]", batch_size=batch_size, seed=args.seed, raw=images)
    return types.SimpleNamespace(meta=meta, images=images, x_fit=x_fit, y_fit=y_fit, validation=validation,
                                 x_test=x_test, y_test=y_test, train=train)


def _export_and_diagnose(model, out, args, data, diagnostics, metadata):
    """Tests `model`, exports it to OUT/<next version>/ with model.keras and the diagnosis beside it."""
    import keras
    import numpy as np

    import kerastoolkit as kt

    x_test, y_test = data.x_test, data.y_test
    probabilities = model.predict(x_test, batch_size=256, verbose=0)
    test_accuracy = float(np.mean(np.argmax(probabilities, axis=-1) == y_test))
    test_loss = float(keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y_test, probabilities)))
    print(f"test accuracy: {test_accuracy:.4f}  test loss: {test_loss:.4f}  ({len(y_test)} examples)")

    version_dir = kt.export.saved_model(
        model, out,
        class_names=CLASS_NAMES.get(args.dataset, [str(c) for c in range(data.meta.num_classes)]),
        metadata=dict(metadata, metrics={"test_accuracy": test_accuracy, "test_loss": test_loss}),
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
    return version_dir
