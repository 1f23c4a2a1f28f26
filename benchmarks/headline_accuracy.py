"""Issue 23, items 1 and 4: the accuracy preset on full Fashion-MNIST, its ablation, and TTA.

    python benchmarks/headline_accuracy.py --range-test
    python benchmarks/headline_accuracy.py --runs full,no_augmentation,... --seeds 0 1 \\
        --out benchmarks/results/headline_accuracy.json --models /tmp/kt_models

The issue's CNN (`_cnn.py`: two 3x3 conv + pool blocks with 32 and 64
filters, Dense 128, Dense 10) on all 60,000 training images, 10 epochs,
test accuracy on the 10,000 test images after every epoch. A recipe is
applied whole (`recipe.standardization` in front, `recipe.fit`); one row
of the ablation removes one part of the preset:

- `full`: the preset as it is;
- `no_augmentation`: `augmentation=None`;
- `no_label_smoothing`: `label_smoothing=0`;
- `no_swa`: `swa=None`;
- `untuned_schedule`: Adam at a constant 1e-3 instead of the one-cycle
  schedule whose peak the range test chose;
- `plain`: plain Keras (Adam 1e-3, batch 128, inputs in [0, 1], nothing else).

For every trained model the test accuracy is also measured with TTA: the
recipe's own views (`Recipe.tta_views`, the views its augmentation draws)
and other view sets, to show which ones pay (item 4). `--range-test` runs
`kt.callbacks.find_learning_rate` on the preset's augmented pipeline (one
partial epoch) and prints its suggestions. Results go to `--out` (JSON,
rewritten after every run; runs already there are skipped).
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kerastoolkit as kt  # noqa: E402
from _cnn import Results, accuracy, cnn, fashion, machine, plain_keras, run_recipe  # noqa: E402

ABLATION = {
    "full": {},
    "no_augmentation": {"augmentation": None, "augmentation_options": {}},
    "no_label_smoothing": {"label_smoothing": 0.0},
    "no_swa": {"swa": None},
    "untuned_schedule": {"schedule": None, "schedule_options": {}, "learning_rate": 1e-3},
}
VIEW_SETS = {
    "flip": ["identity", "hflip"],
    "flip+shift1": ["identity", "hflip", "shift:1"],
}


def tta_accuracies(model, recipe, x_test, y_test):
    """Test accuracy without TTA, with the recipe's views, and with each view set."""
    result = {"none": accuracy(model, x_test, y_test)}
    if recipe is not None:
        views = recipe.tta_views((28, 28, 1))
        result["recipe"] = accuracy(kt.models.TTAPredictor(model, views), x_test, y_test, batch_size=500)
        result["recipe_views"] = views
    for name, views in VIEW_SETS.items():
        result[name] = accuracy(kt.models.TTAPredictor(model, views), x_test, y_test, batch_size=500)
    return result


def averages_after_the_run(model, log, recipe, x_test, y_test):
    """Test accuracy (plain, and with the recipe's TTA views) of the weights averaged from each epoch on.

    SWA reads the weights and changes nothing else in training, so the
    average from any start epoch can be formed after the run from every
    epoch's weights (the CNN has no BatchNorm statistics to recompute). The
    entry for the last epoch alone is the run without SWA.
    """
    final = model.get_weights()
    views = recipe.tta_views((28, 28, 1))
    epochs = len(log.weights)
    swa = recipe.config["swa"]
    with_tta = {epochs, int(swa["start_fraction"] * epochs) + 1 if swa else epochs}  # TTA costs K passes
    table = {}
    for start in range(epochs // 2, epochs):
        kept = log.weights[start:]
        model.set_weights([np.mean([w[i] for w in kept], axis=0) for i in range(len(final))])
        table[start + 1] = {"plain": accuracy(model, x_test, y_test)}
        if start + 1 in with_tta:
            table[start + 1]["tta"] = accuracy(kt.models.TTAPredictor(model, views), x_test, y_test, batch_size=500)
    model.set_weights(final)
    return table


def tta_timing(recipe, model_path, x_test, repeats=7):
    """`TTAPredictor.for_recipe` against K single predictions of the same images (medians, interleaved)."""
    model = keras.saving.load_model(model_path)
    tta = kt.models.TTAPredictor.for_recipe(model, recipe)
    k = tta.num_views
    model.predict(x_test, batch_size=500, verbose=0)
    tta.predict(x_test, batch_size=500, verbose=0)
    single, views = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict(x_test, batch_size=500, verbose=0)
        middle = time.perf_counter()
        tta.predict(x_test, batch_size=500, verbose=0)
        views.append(time.perf_counter() - middle)
        single.append(middle - start)
    s, t = float(np.median(single)), float(np.median(views))
    return {"views": tta.views, "k": k, "single_seconds": s, "tta_seconds": t, "ratio_to_k_singles": t / (k * s),
            "all_single": single, "all_tta": views}


def range_test(recipe, x, y, seed):
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    constant = recipe.replace(schedule=None, warmup_epochs=0, swa=None)
    model = cnn(constant, x)
    constant.compile(model, steps_per_epoch=1, epochs=1, batch_size=128)
    augment = constant.augmentation()
    data = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed).batch(128)
    if augment is not None:
        data = data.map(lambda a, b: (augment(a, training=True), b), num_parallel_calls=tf.data.AUTOTUNE)
    finder = kt.callbacks.find_learning_rate(model, data, min_lr=1e-5, max_lr=1.0, num_steps=300)
    return {"valley": float(finder.valley), "steepest": float(finder.steepest),
            "suggestion": float(finder.suggestion), "steps": len(finder.losses),
            "rates": [float(r) for r in finder.learning_rates], "smoothed_losses": [float(v) for v in finder.smoothed_losses]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="accurate")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=JSON", help="override a preset field")
    parser.add_argument("--runs", default=",".join(list(ABLATION) + ["plain"]))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--label", default="", help="suffix of the run names in the results file")
    parser.add_argument("--out", default="benchmarks/results/headline_accuracy.json")
    parser.add_argument("--models", default=None, help="folder to save every trained model in (.keras)")
    parser.add_argument("--range-test", action="store_true")
    parser.add_argument("--tta-timing", metavar="MODEL.keras", help="time the recipe's TTA on a saved model")
    args = parser.parse_args()
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    recipe = kt.presets.get(args.preset, **overrides)
    x, y, x_test, y_test = fashion()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    results = Results(args.out)
    if args.range_test:
        record = {"run": "range_test" + args.label, "seed": args.seeds[0], "recipe": recipe.to_dict(),
                  "machine": machine()}
        record.update(range_test(recipe, x, y, args.seeds[0]))
        results.add(record)
        print({k: record[k] for k in ("valley", "steepest", "suggestion", "steps")})
        return
    if args.tta_timing:
        record = {"run": "tta_timing" + args.label, "seed": args.seeds[0], "model": args.tta_timing,
                  "machine_before": machine()}
        record.update(tta_timing(recipe, args.tta_timing, x_test))
        record["machine_after"] = machine()
        results.add(record)
        print({k: v for k, v in record.items() if not k.startswith("all_")})
        return
    for seed in args.seeds:
        for run in args.runs.split(","):
            name = run + args.label
            if results.find(run=name, seed=seed):
                print(f"{name} seed {seed}: already in {args.out}")
                continue
            start = time.time()
            before = machine()
            print(f"{name} seed {seed}", flush=True)
            if run == "plain":
                run_recipe_ = None
                model, log = plain_keras(x, y, x_test, y_test, seed, epochs=args.epochs, label=name)
            else:
                run_recipe_ = recipe.replace(**ABLATION[run]) if ABLATION[run] else recipe
                model, log = run_recipe(run_recipe_, x, y, x_test, y_test, seed, epochs=args.epochs, label=name,
                                        keep_weights=True)
            tta = tta_accuracies(model, run_recipe_, x_test, y_test)
            averages = averages_after_the_run(model, log, run_recipe_, x_test, y_test) if run_recipe_ else None
            if args.models:
                os.makedirs(args.models, exist_ok=True)
                model.save(os.path.join(args.models, f"{name}_s{seed}.keras"))
            record = {
                "run": name, "seed": seed, "epochs": args.epochs,
                "recipe": run_recipe_.to_dict() if run_recipe_ is not None else "plain Keras: Adam 1e-3, batch 128",
                "history": log.history, "final": tta["none"], "tta": tta, "averaged_from_epoch": averages,
                "training_seconds": round(log.seconds, 1), "wall_seconds": round(time.time() - start, 1),
                "machine_before": before, "machine_after": machine(),
            }
            results.add(record)
            print(f"{name} seed {seed}: final {tta['none']:.4f}, TTA {json.dumps({k: v for k, v in tta.items() if k != 'recipe_views'})}",
                  flush=True)


if __name__ == "__main__":
    main()
