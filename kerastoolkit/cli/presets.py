"""`kerastoolkit presets`: the training recipes of `kt.presets`, with their sources."""


def add(subparsers):
    return subparsers.add_parser(
        "presets",
        help="list the training recipes of kt.presets, with their sources",
        description=(
            "List every named training recipe (kt.presets.list()): its name, what it does and "
            "its source. `kerastoolkit train --preset NAME` trains with one; `--preset FILE.yaml` "
            "with a recipe of your own (kt.presets.load)."
        ),
    )


def run(args):
    """Prints `kt.presets.format_list()`."""
    from kerastoolkit.presets import format_list

    print(format_list())
    return 0
