"""Issue 23, item 3: distillation on full Fashion-MNIST that recovers the teacher-student gap.

    python benchmarks/headline_distillation.py --teachers /tmp/kt_models/full_s0.keras,... \\
        --runs alone,live,stored,black_box --seeds 0 1 --temperature 4 --alpha 0.1
    python benchmarks/headline_distillation.py --teachers ... --sweep-temperatures 1 2 4 8 \\
        --sweep-alphas 0.1 0.5 --sweep-epochs 5

Teacher: an ensemble (`kt.models.Ensemble`, the average of the members'
distributions) of CNNs trained by `headline_accuracy.py` (the issue's CNN
and the `accurate` preset), predicted with TTA on `--teacher-views` when
given (`kt.models.TTAPredictor` around the ensemble). Student: the same CNN made narrow (`--student`
filters and dense units), at most a tenth of the teacher's parameters.
Every student is trained with the same recipe (`--preset`, default
`accurate`: its optimizer, schedule, augmentation, label smoothing and SWA)
for the same epochs; only the targets differ:

- `alone`: the hard labels (`recipe.fit`);
- `live`: `kt.models.Distiller(teacher, student)`, the teacher called on
  every augmented training batch (the student's own view);
- `stored`: the teacher's soft targets computed once on the training images
  (`kt.models.soft_targets`), saved with NumPy and read back,
  `Distiller(None, student)`;
- `black_box`: the teacher exported as a SavedModel (`kt.export.saved_model`)
  and asked only for its served probabilities (`kt.export.load`), stored as
  soft targets.

Reported: test accuracy and the fraction of the teacher-student gap
recovered, `(acc - alone) / (teacher - alone)`. Results go to `--out`.
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kerastoolkit as kt  # noqa: E402
from _cnn import EpochLog, Results, accuracy, cnn, fashion, machine, run_recipe  # noqa: E402


def teacher_ensemble(paths, views=None):
    """The members' ensemble, predicted with TTA on `views` when given."""
    members = [keras.saving.load_model(p, compile=False) for p in paths]
    ensemble = kt.models.Ensemble(members)
    return (kt.models.TTAPredictor(ensemble, views) if views else ensemble), members


def pipeline(recipe, x, targets, seed):
    import tensorflow as tf

    batch = recipe.config["batch_size"]
    data = tf.data.Dataset.from_tensor_slices((x, targets)).shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    data = data.batch(batch)
    augment = recipe.augmentation()
    if augment is not None:
        data = data.map(lambda a, *rest: (augment(a, training=True), *rest), num_parallel_calls=tf.data.AUTOTUNE)
    return data.prefetch(tf.data.AUTOTUNE)


def distil(recipe, teacher, q, x, y, x_test, y_test, seed, args, epochs, temperature, alpha, label):
    """Trains a student with `kt.models.Distiller`; `teacher` live, or `q` the stored soft targets."""
    keras.utils.set_random_seed(seed)
    student = cnn(recipe, x, filters=args.student[:2], dense=args.student[2])
    distiller = kt.models.Distiller(teacher if q is None else None, student, temperature=temperature, alpha=alpha,
                                    teacher_outputs="probabilities", student_outputs="probabilities")
    steps = -(-len(x) // recipe.config["batch_size"])
    distiller.compile(recipe.optimizer(steps, epochs, recipe.config["batch_size"]), recipe.loss())
    data = pipeline(recipe, x, y if q is None else (y, q), seed)
    log = EpochLog(x_test, y_test, label, evaluated=student)
    callbacks = recipe.callbacks(epochs=epochs, directory=tempfile.mkdtemp(), data=x) + [log]
    distiller.fit(data, epochs=epochs, callbacks=callbacks, verbose=0)
    return student, log


def soft_targets(kind, teacher, x, temperature, folder):
    path = os.path.join(folder, f"{kind}_T{temperature:g}.npy")
    if os.path.exists(path):  # the same teacher and images for every seed: computed once per process
        return np.load(path)
    if kind == "stored":
        q = kt.models.soft_targets(teacher, x, temperature=temperature, teacher_outputs="probabilities")
    else:  # a black box: the exported SavedModel's served probabilities, nothing else
        version = kt.export.saved_model(teacher, os.path.join(folder, "teacher"), verbose=0) \
            if not os.path.isdir(os.path.join(folder, "teacher", "1")) else os.path.join(folder, "teacher", "1")
        served = kt.export.load(version)
        q = kt.models.soft_targets(served, x, temperature=temperature, teacher_outputs="probabilities")
    np.save(path, q)
    return np.load(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teachers", required=True, help="comma-separated .keras members of the teacher ensemble")
    parser.add_argument("--teacher-views", nargs="*", default=None,
                        help="predict the teacher ensemble with TTA on these views (e.g. identity hflip)")
    parser.add_argument("--student", type=int, nargs=3, default=[16, 32, 64], metavar=("F1", "F2", "DENSE"))
    parser.add_argument("--preset", default="accurate")
    parser.add_argument("--runs", default="alone,live,stored,black_box")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--sweep-temperatures", type=float, nargs="*", default=[])
    parser.add_argument("--sweep-alphas", type=float, nargs="*", default=[])
    parser.add_argument("--sweep-epochs", type=int, default=5)
    parser.add_argument("--label", default="")
    parser.add_argument("--out", default="benchmarks/results/headline_distillation.json")
    args = parser.parse_args()
    x, y, x_test, y_test = fashion()
    recipe = kt.presets.get(args.preset)
    teacher, members = teacher_ensemble(args.teachers.split(","), args.teacher_views)
    student_params = cnn(recipe, x[:100], filters=args.student[:2], dense=args.student[2]).count_params()
    teacher_params = sum(m.count_params() for m in members)
    results = Results(args.out)
    folder = tempfile.mkdtemp(prefix="kt_distil_")
    if not results.find(run="teacher" + args.label, seed=0):
        results.add({"run": "teacher" + args.label, "seed": 0, "members": args.teachers.split(","),
                     "views": args.teacher_views,
                     "test_accuracy": accuracy(teacher, x_test, y_test), "parameters": teacher_params,
                     "student_parameters": student_params, "machine": machine()})
    print(results.find(run="teacher" + args.label, seed=0), flush=True)

    def one(kind, seed, epochs, temperature, alpha, name):
        if results.find(run=name, seed=seed):
            return
        start, before = time.time(), machine()
        print(f"{name} seed {seed}", flush=True)
        if kind == "alone":
            _, log = run_recipe(recipe, x, y, x_test, y_test, seed, epochs=epochs, label=name,
                                filters=args.student[:2], dense=args.student[2])
        else:
            q = None if kind == "live" else soft_targets(kind, teacher, x, temperature, folder)
            _, log = distil(recipe, teacher, q, x, y, x_test, y_test, seed, args, epochs, temperature, alpha, name)
        results.add({"run": name, "seed": seed, "kind": kind, "epochs": epochs, "temperature": temperature,
                     "alpha": alpha, "history": log.history, "final": log.history[-1][2],
                     "wall_seconds": round(time.time() - start, 1), "machine_before": before,
                     "machine_after": machine()})
        print(f"{name} seed {seed}: {log.history[-1][2]:.4f}", flush=True)

    for seed in args.seeds:
        for kind in [k for k in args.runs.split(",") if k]:
            name = kind if kind == "alone" else f"{kind}_T{args.temperature:g}_a{args.alpha:g}"
            one(kind, seed, args.epochs, args.temperature, args.alpha, name + args.label)
    for temperature in args.sweep_temperatures:
        for alpha in args.sweep_alphas:
            name = f"sweep_stored_T{temperature:g}_a{alpha:g}_e{args.sweep_epochs}{args.label}"
            one("stored", args.seeds[0], args.sweep_epochs, temperature, alpha, name)
    if args.sweep_temperatures:
        one("alone", args.seeds[0], args.sweep_epochs, None, None, f"sweep_alone_e{args.sweep_epochs}{args.label}")


if __name__ == "__main__":
    main()
