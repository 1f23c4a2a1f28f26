"""Train with a preset (a whole training recipe) in an ordinary Keras script.

    python examples/preset_in_a_script.py [--preset sgd_warmup_cosine] [--epochs 20]

`kt.presets.get(name, **overrides)` returns an immutable `Recipe`; the
script uses its pieces in plain `compile`/`fit` calls (optimizer with its
schedule and warmup, loss, callbacks), saves the recipe as YAML beside the
run and loads it back, then trains a second model with the `recipe.fit`
shortcut, which derives the steps per epoch from the data.
"""

import argparse
import os
import tempfile

import keras

import kerastoolkit as kt


def make_model():
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="sgd_warmup_cosine", help="a kt.presets name (default: sgd_warmup_cosine)")
    parser.add_argument("--epochs", type=int, default=20, help="training epochs (default: 20)")
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    x_train, y_train = kt.data.load("digits", "train", as_numpy=True)
    x_test, y_test = kt.data.load("digits", "test", as_numpy=True)
    x_val, y_val = x_train[:150], y_train[:150]
    x_fit, y_fit = x_train[150:], y_train[150:]

    # 1. The recipe's pieces in an ordinary script.
    recipe = kt.presets.get(args.preset, batch_size=32, epochs=args.epochs)
    print(f"{recipe.name}: {recipe.description} ({recipe.source})")
    steps_per_epoch = -(-len(x_fit) // 32)
    model = make_model()
    model.compile(
        optimizer=recipe.optimizer(steps_per_epoch=steps_per_epoch, epochs=args.epochs, batch_size=32),
        loss=recipe.loss(),
        metrics=["accuracy"],
    )
    with tempfile.TemporaryDirectory() as run_dir:
        model.fit(
            x_fit, y_fit, batch_size=32, epochs=args.epochs, validation_data=(x_val, y_val),
            callbacks=recipe.callbacks(epochs=args.epochs, directory=os.path.join(run_dir, "snapshots")),
            verbose=0,
        )
        first = model.evaluate(x_test, y_test, verbose=0)[1]

        # 2. The recipe as a file: saved, loaded back unchanged.
        path = recipe.save(os.path.join(run_dir, "recipe.yaml"))
        loaded = kt.presets.load(path)
        assert loaded == recipe

        # 3. The shortcut: compile + fit, steps per epoch taken from the data.
        keras.utils.set_random_seed(0)
        second_model = make_model()
        loaded.fit(second_model, (x_fit, y_fit), (x_val, y_val), directory=os.path.join(run_dir, "snapshots2"), verbose=0, seed=0)
        second = second_model.evaluate(x_test, y_test, verbose=0)[1]
    print(f"recipe round trip through {os.path.basename(path)}: identical")
    print(f"test accuracy {first:.4f} (compile/fit) {second:.4f} (recipe.fit)")


if __name__ == "__main__":
    main()
