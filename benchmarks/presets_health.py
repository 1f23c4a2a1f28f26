"""Issue 23, item 6: is every preset diagnosed healthy where it claims to work?

    python benchmarks/presets_health.py [--presets adam,fast] [--datasets own] [--seeds 0] \\
        [--set sgd_momentum_step.l2=5e-05] [--out benchmarks/results/presets_health.json]

Runs `kerastoolkit train --preset P --dataset D --seed S` (in this process,
as the command runs it: the recipe's own epochs and batch size, else the
dataset's defaults) and records the toolkit's own diagnosis of the run
(`report.json`) and the test accuracy. `--datasets own` trains each preset
on the dataset it lists (`recipe.config["dataset"]`). `--set P.FIELD=JSON`
trains a variant of a preset (written to a recipe file and passed as
`--preset FILE`), named `P+FIELD=VALUE`.
"""

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from _cnn import Results, machine  # noqa: E402


def train(preset, dataset, seed, out, extra=()):
    from kerastoolkit import cli

    text = io.StringIO()
    start = time.time()
    with contextlib.redirect_stdout(text):
        status = cli.main(["train", "--preset", preset, "--dataset", dataset, "--seed", str(seed), "--out", out,
                           "--verbose", "0", *extra])
    printed = text.getvalue()
    if status != 0:
        return {"status": status, "printed": printed[-2000:]}
    version = max((v for v in os.listdir(out) if v.isdigit()), key=int)
    with open(os.path.join(out, version, "report.json")) as f:
        report = json.load(f)
    with open(os.path.join(out, version, "assets", "kerastoolkit_metadata.json")) as f:
        metadata = json.load(f)
    return {
        "status": 0, "codes": [finding["code"] for finding in report["findings"]],
        "findings": [finding["message"] for finding in report["findings"]],
        "test_accuracy": metadata["metrics"]["test_accuracy"], "epochs": metadata["epochs"],
        "epochs_trained": metadata["epochs_trained"], "batch_size": metadata["batch_size"],
        "seconds": round(time.time() - start, 1),
    }


def main():
    import kerastoolkit as kt

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default=",".join(kt.presets.names()))
    parser.add_argument("--datasets", default="own", help="comma-separated datasets, or `own`")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--set", action="append", default=[], metavar="PRESET.FIELD=JSON")
    parser.add_argument("--out", default="benchmarks/results/presets_health.json")
    args = parser.parse_args()
    variants = {}
    for item in args.set:
        key, value = item.split("=", 1)
        name, field = key.split(".", 1)
        variants.setdefault(name, {})[field] = json.loads(value)
    folder = tempfile.mkdtemp(prefix="presets_health_")
    runs = []
    for name in args.presets.split(","):
        recipe = kt.presets.get(name, **variants.get(name, {}))
        label, preset = name, name
        if name in variants:
            label = name + "".join(f"+{k}={json.dumps(v)}" for k, v in variants[name].items())
            preset = recipe.save(os.path.join(folder, f"{name}.json"))
        datasets = [recipe.config["dataset"]] if args.datasets == "own" else args.datasets.split(",")
        runs += [(label, preset, d) for d in datasets]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    results = Results(args.out)
    for seed in args.seeds:
        for label, preset, dataset in runs:
            run = f"{label} on {dataset}"
            if results.find(run=run, seed=seed):
                continue
            before = machine()
            record = {"run": run, "seed": seed, "machine_before": before}
            record.update(train(preset, dataset, seed, os.path.join(folder, "out", label, dataset, str(seed))))
            record["machine_after"] = machine()
            results.add(record)
            print(f"{run} seed {seed}: {record.get('codes')} test accuracy {record.get('test_accuracy')} "
                  f"({record.get('epochs_trained')}/{record.get('epochs')} epochs, {record.get('seconds')} s)", flush=True)


if __name__ == "__main__":
    main()
