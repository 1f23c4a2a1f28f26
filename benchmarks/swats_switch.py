"""SWATS switch steps at the default switch test, on digits and Fashion-MNIST.

For each dataset an MLP is trained with `kt.optimizers.SWATS()` at its
defaults (relative test, `switch_tolerance=1e-3`) and with the paper's
absolute test (`switch_criterion="absolute", switch_tolerance=1e-9`), and the
step at which each variable switched to SGD (and its SGD rate `Λ`) is printed
as a Markdown table, with the test accuracy.

Usage:

    python benchmarks/swats_switch.py --output /tmp/swats.md  # then into BENCHMARKS.md
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kerastoolkit as kt  # noqa: E402

SETTINGS = {
    "default (relative, 1e-3)": {},
    "paper (absolute, 1e-9)": {"switch_criterion": "absolute", "switch_tolerance": 1e-9},
}


def run(name, epochs, train_size, batch_size, setting):
    x, y = kt.data.load(name, "train", as_numpy=True)
    xt, yt = kt.data.load(name, "test", as_numpy=True)
    x, y = x[:train_size].reshape(min(train_size, len(x)), -1), y[:train_size]
    xt = xt.reshape(len(xt), -1)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input(x.shape[1:]),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(10),
    ])
    optimizer = kt.optimizers.SWATS(**SETTINGS[setting])
    model.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0)
    accuracy = model.evaluate(xt, yt, verbose=0)[1]
    steps = epochs * int(np.ceil(len(x) / batch_size))
    return optimizer.switch_state(), accuracy, steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    lines = [
        "| dataset (MLP 128) | switch test | steps | switch step per variable (Λ) | test accuracy |",
        "| --- | --- | ---: | --- | ---: |",
    ]
    for name, epochs, size, batch in (("digits", 15, 1500, 64),
                                      ("fashion_mnist", 3, 20000, 128)):
        for setting in SETTINGS:
            state, accuracy, steps = run(name, epochs, size, batch, setting)
            cells = ", ".join(
                f"{s['variable'].split('/')[-2]}/{s['variable'].split('/')[-1]}: "
                + (f"{s['switch_step']} ({s['sgd_learning_rate']:.3g})"
                   if s["switch_step"] else "none")
                for s in state
            )
            lines.append(f"| {name} | {setting} | {steps} | {cells} | {accuracy:.3f} |")
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
