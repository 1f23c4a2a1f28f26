"""`kerastoolkit distill`: a saved teacher distilled into the dataset's default classifier.

The same pipeline as `kerastoolkit train` (its data, recipe, staging folder,
export and diagnosis), with `kt.models.Distiller` training the student on
the teacher's soft targets (Hinton et al. 2015). The teacher is either

- a `.keras` file: a live teacher, called on every training batch (the same
  augmented images as the student); or
- a SavedModel folder (a version folder, or an export root whose newest
  version is taken): a black box that is only asked for its predictions
  through its `serving_default` signature, once per training and
  validation example; its softened answers are the stored soft targets.

Nothing heavy is imported until `run`.
"""

import os
import re
import sys

from kerastoolkit.cli import train
from kerastoolkit.cli._args import fail
from kerastoolkit.cli._args import number

TEACHER_OUTPUTS = ("probabilities", "logits")
MAX_TEMPERATURE = 100.0
_VERSION = re.compile(r"^\d+$")


def add(subparsers):
    parser = subparsers.add_parser(
        "distill",
        help="distil a saved teacher (.keras or a SavedModel) into a small classifier and export it",
        description=(
            "Train the dataset's default classifier (the model `kerastoolkit train` builds) on the "
            "hard labels and the soft targets of TEACHER (kt.models.Distiller: "
            "alpha * CE(y, student) + (1 - alpha) * T^2 * KL(teacher_T || student_T)), print the "
            "teacher's and the student's test accuracy, and export the student as `train` does: "
            "OUT/<version>/ with model.keras, epochs.csv, steps.csv, report.json and curves.png "
            "beside it. TEACHER is a .keras file (a live teacher, shown the same augmented images "
            "as the student) or a SavedModel folder used as a black box through its "
            "serving_default signature (asked once per example; its answers are stored)."
        ),
        epilog="A run that fails leaves nothing in OUT.",
    )
    parser.add_argument(
        "teacher",
        metavar="TEACHER",
        help=(
            "the teacher: a .keras file, or a SavedModel folder (a version folder with "
            "saved_model.pb, or an export root such as savedmodels/digits: its newest version)"
        ),
    )
    parser.add_argument(
        "--temperature",
        type=number(0.0, MAX_TEMPERATURE),
        default=4.0,
        metavar="T",
        help="softening temperature of the teacher's and the student's outputs (default: 4)",
    )
    parser.add_argument(
        "--alpha",
        type=number(0.0, 1.0, include_minimum=True),
        default=0.1,
        metavar="A",
        help="weight of the hard-label loss; 1 - A weighs the soft targets (default: 0.1)",
    )
    parser.add_argument(
        "--teacher-outputs",
        choices=TEACHER_OUTPUTS,
        default="probabilities",
        help=(
            "what the teacher outputs; checked on the first examples (default: probabilities, "
            "what `kerastoolkit train` models and their SavedModels give)"
        ),
    )
    train.add_training_flags(parser, out_default="savedmodels/DATASET_student")
    parser.set_defaults(snapshots=None)  # one student: no snapshot ensemble
    return parser


def teacher_folder(path):
    """The SavedModel version folder of `path`, or `None` if it holds none.

    `path` is a version folder (it holds `saved_model.pb`) or an export root
    whose numeric sub-folders are versions (the newest is taken).
    """
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    versions = sorted(
        (int(name) for name in os.listdir(path) if _VERSION.match(name)
         and os.path.isfile(os.path.join(path, name, "saved_model.pb"))),
    )
    return os.path.join(path, str(versions[-1])) if versions else None


def validate(args, parser):
    """The teacher path's kind, then `train`'s checks (before anything heavy is imported)."""
    path = args.teacher
    if os.path.isdir(path):
        if teacher_folder(path) is None:
            parser.error(f"argument TEACHER: {path!r} is a folder without a SavedModel (no saved_model.pb "
                         "in it or in a numbered version folder)")
    elif not os.path.isfile(path):
        parser.error(f"argument TEACHER: {path!r}: no such file or folder")
    elif not path.endswith(".keras"):
        parser.error(f"argument TEACHER: expected a .keras file or a SavedModel folder, got {path!r}")
    train.validate(args, parser)


def _check_outputs(outputs, kind, num_classes, where):
    """An error message when the teacher's first outputs do not fit the dataset or `kind`, else `None`."""
    import numpy as np

    outputs = np.asarray(outputs, dtype="float64")
    if outputs.ndim != 2 or outputs.shape[1] != num_classes:
        return f"the teacher {where} gives outputs of shape {outputs.shape[1:]}, the dataset has {num_classes} classes"
    if kind == "probabilities":
        sums = outputs.sum(axis=1)
        if outputs.min() < -1e-6 or np.max(np.abs(sums - 1.0)) > 1e-3:
            return (f"the teacher {where} does not output probabilities (its rows sum to {sums.min():.3g} to "
                    f"{sums.max():.3g}); if it outputs logits, pass --teacher-outputs logits")
    return None


def _black_box(args, folder, meta):
    """A function from inputs to the SavedModel's class probabilities, or an error message."""
    import keras
    import numpy as np

    import kerastoolkit as kt

    try:
        served = kt.export.load(folder)
    except (ValueError, OSError) as error:
        return f"argument TEACHER: cannot load the SavedModel {folder!r}: {error}"
    spec = served.input_spec
    if spec is not None and not spec.shape[1:].is_compatible_with(meta.input_shape):
        return (f"argument TEACHER: the SavedModel {folder!r} takes inputs of shape {tuple(spec.shape.as_list()[1:])}, "
                f"the dataset's are {tuple(meta.input_shape)}")

    def answer(x):
        outputs = served.predict(x)
        if isinstance(outputs, dict):  # the serving signature's named outputs
            if "probabilities" in outputs:
                outputs = outputs["probabilities"]
            elif len(outputs) == 1:
                outputs = next(iter(outputs.values()))
            else:
                raise ValueError(f"no 'probabilities' among its outputs {sorted(outputs)}")
        if args.teacher_outputs == "logits":  # softmax(log softmax(z) / T) = softmax(z / T)
            outputs = keras.ops.convert_to_numpy(keras.ops.softmax(outputs))
        return np.asarray(outputs, dtype="float32")

    answer.served = served  # keeps the loaded SavedModel referenced while it answers
    return answer


def _teacher(args, data):
    """`(live_model, black_box, test_accuracy)` for the TEACHER argument, or an error message."""
    import keras
    import numpy as np

    sample = data.x_fit[:64]
    if os.path.isdir(args.teacher):
        folder = teacher_folder(args.teacher)
        black_box = _black_box(args, folder, data.meta)
        if isinstance(black_box, str):
            return black_box
        try:
            problem = _check_outputs(black_box(sample), "probabilities", data.meta.num_classes, f"at {folder}")
        except (ValueError, TypeError) as error:  # a signature that does not take these inputs
            problem = f"the teacher at {folder} cannot answer for the dataset's inputs: {error}"
        if problem:
            return f"argument TEACHER: {problem}"
        live = None
        predictions = black_box(data.x_test)
    else:
        try:
            live = keras.saving.load_model(args.teacher, compile=False)
        except Exception as error:  # noqa: BLE001  (any loading failure is the file's)
            return f"argument TEACHER: cannot load {args.teacher!r}: {error}"
        outputs = keras.ops.convert_to_numpy(live(sample, training=False))
        problem = _check_outputs(outputs, args.teacher_outputs, data.meta.num_classes, f"in {args.teacher}")
        if problem:
            return f"argument TEACHER: {problem}"
        black_box = None
        predictions = live.predict(data.x_test, batch_size=256, verbose=0)
    accuracy = float(np.mean(np.argmax(predictions, axis=-1) == data.y_test))
    return live, black_box, accuracy


def _training_data(args, data, black_box, batch_size, augmentation):
    """The batched training set and the validation data: `(x, y)`, or `(x, (y, q))` with stored targets."""
    import tensorflow as tf

    import kerastoolkit as kt

    validation = data.validation
    if black_box is None:
        dataset = data.train
    else:
        def targets(x):
            return kt.models.soft_targets(black_box, x, temperature=args.temperature,
                                          teacher_outputs="probabilities")

        q_fit = targets(data.x_fit)
        if validation is not None:
            validation = (validation[0], (validation[1], targets(validation[0])))
        dataset = (
            tf.data.Dataset.from_tensor_slices((data.x_fit, (data.y_fit, q_fit)))
            .shuffle(len(data.x_fit), seed=args.seed, reshuffle_each_iteration=True)
            .batch(batch_size)
            .prefetch(tf.data.AUTOTUNE)
        )
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        dataset = dataset.with_options(options)
    if augmentation is not None:
        # In the pipeline, not in the student: a live teacher sees the same view.
        dataset = kt.data.augment_dataset(dataset, augmentation)
    return dataset, validation


def run(args):
    """Runs `kerastoolkit distill` for parsed (and validated) arguments."""
    import keras

    import kerastoolkit as kt

    try:
        recipe = kt.presets.get(args.preset)
    except (ValueError, KeyError, TypeError, OSError) as error:
        return fail(f"argument --preset: {error}", 2)
    if recipe.config["snapshots"]:
        return fail(f"argument --preset: {recipe.name!r} trains a snapshot ensemble; distill trains one "
                    "student: choose another preset", 2)
    sizes = train._sizes(recipe, args)
    if isinstance(sizes, int):
        return sizes
    epochs, batch_size = sizes
    verbose = args.verbose if args.verbose is not None else (1 if sys.stdout.isatty() else 2)
    out = args.out or os.path.join("savedmodels", f"{args.dataset}_student")
    policy = args.augment if args.augment is not None else recipe.config["augmentation"]
    policy = None if policy == "none" else policy
    images = args.dataset in train.IMAGE_DATASETS
    if policy is not None and not images:
        return fail(f"preset {recipe.name!r} augments images ({policy}); {args.dataset} is not images: "
                    "pass --augment none", 2)
    started = train._start(args, out)
    if isinstance(started, int):
        return started
    strategy, out = started
    data = train._load(args, batch_size)
    description = recipe.description
    recipe = train._recipe(recipe, args, has_validation=data.validation is not None)
    previous_policy = keras.mixed_precision.global_policy()
    if recipe.config["dtype_policy"]:
        keras.mixed_precision.set_global_policy(recipe.config["dtype_policy"])
    try:
        with strategy.scope():
            teacher = _teacher(args, data)
            if isinstance(teacher, str):
                return fail(teacher, 2)
            live, black_box, teacher_accuracy = teacher
            augmentation = None
            if policy is not None:
                try:
                    augmentation = kt.data.augmentation_for(args.dataset, policy, raw=images, seed=args.seed,
                                                            **train._policy_options(recipe, policy))
                except ValueError as error:
                    return fail(f"argument --augment: {error}", 2)
                augmentation, policy = train._unless_empty(augmentation, policy, args.dataset)
            student = kt.models.default_classifier(
                data.meta.input_shape, data.meta.num_classes, normalization_data=data.x_fit,
                name=f"{args.dataset}_student", dropout=recipe.config["dropout"],
            )
            steps_per_epoch = -(-len(data.x_fit) // batch_size)
            recipe.compile(student, steps_per_epoch=steps_per_epoch, epochs=epochs, batch_size=batch_size)
            distiller = kt.models.Distiller(
                live, student, temperature=args.temperature, alpha=args.alpha,
                teacher_outputs=args.teacher_outputs, student_outputs="probabilities",
            )
            distiller.compile(
                optimizer=recipe.optimizer(steps_per_epoch, epochs, batch_size),
                loss=recipe.loss(), metrics=["accuracy"],
            )
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    if args.preflight:
        report = kt.preflight.check(student, (data.x_fit, data.y_fit), batch_size=batch_size, shuffle=True)
        print(report)
        if report.errors:
            return fail("preflight found errors (above): fix them, or distill without --preflight")
    kind = "a live .keras model" if live is not None else "a black-box SavedModel"
    print(f"teacher: {args.teacher} ({kind}), test accuracy {teacher_accuracy:.4f}")
    print(f"preset {recipe.name}: {description}")
    print(f"distillation: temperature {args.temperature:g}, alpha {args.alpha:g}")
    sys.stdout.flush()
    training, validation = _training_data(args, data, black_box, batch_size, augmentation)
    try:
        with train._staging_folder(out) as staging:
            callbacks = recipe.callbacks(epochs=epochs, directory=os.path.join(staging, "snapshots"), data=data.x_fit)
            diagnostics = kt.callbacks.CurveDiagnostics(log_dir=os.path.join(staging, "diagnostics"),
                                                        early_stopping=train.early_stopping_of(callbacks))
            callbacks.append(diagnostics)  # last: its log has the rate PlateauDecay sets
            history = distiller.fit(training, epochs=epochs, validation_data=validation, shuffle=False,
                                    callbacks=callbacks, verbose=verbose)
            # model.keras keeps the optimizer that trained the student, to fine-tune or resume.
            student.compile(optimizer=distiller.optimizer, loss=recipe.loss(), metrics=["accuracy"])
            train._export_and_diagnose(student, out, args, data, diagnostics, {
                "dataset": args.dataset, "recipe": recipe, "seed": args.seed, "epochs": epochs,
                "epochs_trained": len(history.epoch), "batch_size": batch_size, "augmentation": policy,
                "teacher": {"path": os.path.abspath(args.teacher), "kind": "keras" if live is not None else "saved_model",
                            "outputs": args.teacher_outputs, "test_accuracy": teacher_accuracy},
                "distillation": {"temperature": args.temperature, "alpha": args.alpha},
            })
    except train.OutputFolderError as error:
        return fail(str(error), 2)
    return 0
