"""docs/migrating_from_tfa.md: the table covers every in-scope tfa piece, each
row's snippet link resolves, and every ```python block runs as it stands.

The blocks run in this process (each in a fresh namespace, a fresh Keras
session and a temporary working directory), so the whole page costs seconds.
"""

import os
import re

import keras
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC = os.path.join(ROOT, "docs", "migrating_from_tfa.md")

# tfa 0.23's public training pieces (tensorflow_addons/{optimizers,layers,callbacks}/__init__.py)
# that the main table must map (or mark out of scope, with the reason).
IN_SCOPE = {
    "optimizers": ["AdaBelief", "AdamW", "AveragedOptimizerWrapper", "COCOB", "ConditionalGradient",
                   "CyclicalLearningRate", "DecoupledWeightDecayExtension",
                   "ExponentialCyclicalLearningRate", "KerasLegacyOptimizer", "LAMB", "LazyAdam",
                   "Lookahead", "MovingAverage", "MultiOptimizer", "NovoGrad", "ProximalAdagrad",
                   "RectifiedAdam", "SGDW", "SWA", "Triangular2CyclicalLearningRate",
                   "TriangularCyclicalLearningRate", "Yogi", "extend_with_decoupled_weight_decay"],
    "layers": ["FilterResponseNormalization", "GroupNormalization", "InstanceNormalization",
               "NoisyDense", "SpectralNormalization", "StochasticDepth", "TLU", "WeightNormalization"],
    "callbacks": ["AverageModelCheckpoint", "TQDMProgressBar", "TimeStopping"],
}
# The rest of tfa: named in the out-of-scope table.
OUT_OF_SCOPE = [
    "AdaptiveAveragePooling1D", "AdaptiveMaxPooling1D", "CRF", "CorrelationCost", "ESN",
    "EmbeddingBag", "GELU", "MaxUnpooling2D", "MaxUnpooling2DV2", "Maxout", "MultiHeadAttention",
    "PoincareNormalize", "PolynomialCrossing", "Snake", "Sparsemax", "SpatialPyramidPooling2D",
    "tfa.activations", "tfa.image", "tfa.losses", "tfa.metrics", "tfa.rnn", "tfa.seq2seq", "tfa.text",
]


def _text():
    with open(DOC) as handle:
        return handle.read()


def slug(heading):
    """GitHub's anchor for a heading."""
    return re.sub(r"[^a-z0-9 -]", "", heading.strip().lower()).replace(" ", "-")


def sections(text):
    """`{heading: body}` of the level-2 sections."""
    parts = re.split(r"^## ", text, flags=re.M)
    return {p.splitlines()[0].strip(): p for p in parts[1:]}


def table_rows(section):
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows[1:]]


def python_blocks(text):
    """`(heading, line, code)` of every ```python block."""
    blocks, heading = [], "top"
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("#"):
            heading = lines[i].lstrip("#").strip()
        if lines[i].strip() == "```python":
            end = lines.index("```", i + 1)
            blocks.append((heading, i + 2, "\n".join(lines[i + 1:end]) + "\n"))
            i = end
        i += 1
    return blocks


def test_every_in_scope_tfa_piece_has_a_row():
    rows = table_rows(sections(_text())["The table"])
    first_column = " ".join(row[0] for row in rows)
    for module, names in IN_SCOPE.items():
        for name in names:
            assert re.search(rf"\b{name}\b", first_column), f"tfa.{module}.{name} has no row"
    for row in rows:
        assert len(row) == 4, row
        mapped = not row[1].startswith("out of scope") and row[1] != "—"
        # A mapped row has a snippet; an unmapped one says why.
        assert (row[3] != "—") if mapped else len(row[2]) > 40, row


def test_the_rest_of_tfa_is_listed_as_out_of_scope():
    section = sections(_text())["Out of scope, with the new home where there is one"]
    for name in OUT_OF_SCOPE:
        assert name in section, name


def test_snippet_links_resolve():
    text = _text()
    anchors = {slug(h) for h, _, _ in python_blocks(text)}
    links = re.findall(r"\]\(#([a-z0-9-]+)\)", text)
    assert links
    for link in links:
        assert link in anchors, link
    # Every snippet is linked from the table.
    assert anchors <= set(links)


BLOCKS = python_blocks(_text())


def test_blocks_are_found_and_complete():
    assert len(BLOCKS) == _text().count("```python") >= 15
    for heading, line, code in BLOCKS:
        for name in ("kt", "keras", "np"):
            if re.search(rf"\b{name}\.", code):
                assert re.search(rf"^import \S+ as {name}$|^import {name}$", code, re.M), (name, line)


@pytest.mark.parametrize("heading, line, code", BLOCKS, ids=[slug(b[0]) for b in BLOCKS])
def test_snippet_runs(heading, line, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    keras.backend.clear_session()
    exec(compile(code, f"{DOC}:{line}", "exec"), {"__name__": "__main__"})
