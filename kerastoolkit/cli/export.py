"""`kerastoolkit export`: a saved Keras model as a SavedModel for TensorFlow Serving."""

import os

from kerastoolkit.cli._args import fail
from kerastoolkit.cli._args import output_folder


def add(subparsers):
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
        "--out", type=output_folder, required=True, metavar="DIR",
        help="export root; the model goes to OUT/<next version>/",
    )
    parser.add_argument(
        "--class-names", metavar="NAMES", default=None,
        help="comma-separated class names, one per output class (e.g. 0,1,2,...)",
    )
    parser.add_argument(
        "--outputs", choices=("logits", "probabilities"), default=None,
        help=(
            "what the model outputs; a logits model is served with the softmax in the graph "
            "(default: decided from the saved loss's from_logits, the last layer and a sample; "
            "an error when they disagree)"
        ),
    )
    return parser


def validate(args, parser):
    if os.path.isdir(args.model) or not os.path.isfile(args.model):
        parser.error(f"argument MODEL.keras: {args.model!r} is not a file")
    if not args.model.endswith(".keras"):
        parser.error(f"argument MODEL.keras: expected a .keras file, got {args.model!r}")
    if args.class_names is not None and not all(n.strip() for n in args.class_names.split(",")):
        parser.error(f"argument --class-names: empty name in {args.class_names!r}")


def run(args):
    """Runs `kerastoolkit export` (`kt.export.export_keras_file`)."""
    from kerastoolkit.export import export_keras_file
    from kerastoolkit.presets._output_kind import OutputKindError

    class_names = None if args.class_names is None else [n.strip() for n in args.class_names.split(",")]
    try:
        path = export_keras_file(args.model, args.out, class_names=class_names, outputs=args.outputs)
    except OutputKindError as error:
        return fail(f"cannot export {args.model!r}: {error} On the command line: --outputs logits|probabilities.")
    except (ValueError, TypeError, RuntimeError) as error:
        return fail(f"cannot export {args.model!r}: {error}")
    print(f"SavedModel: {path}")
    return 0
