"""Nothing outside ``keras_reversible/model.py`` uses an underscored ``ReversibleModel`` attribute.

Export, benchmarks, examples and tests reach the reverse pass through the
public ``model.reverse_program`` (``keras_reversible.ReverseProgram``) and the
loss terms through ``model.compute_loss_terms``.
"""

import pathlib
import re

import keras

import keras_reversible as kr

ROOT = pathlib.Path(__file__).resolve().parents[1]
FOLDERS = ("keras_reversible", "zoo", "examples", "benchmarks", "tests", "tools")
# Private names the model had before it exposed its program: never again.
FORMER = ("_forward", "_reverse", "_rev", "_settings", "_depth", "_lambdas", "_latent",
          "_loss_terms", "_reverse_statistics")


def _private_names():
    """Underscored attributes ``ReversibleModel`` adds to ``keras.Model``'s."""
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(2)(keras.layers.Dense(3)(inputs))
    model = kr.ReversibleModel(inputs, outputs)
    plain = keras.Model(inputs, outputs)
    own = set(vars(kr.ReversibleModel)) | set(vars(model))
    keras_names = set(dir(keras.Model)) | set(vars(plain))
    return sorted({n for n in own - keras_names if n.startswith("_") and not n.startswith("__")}
                  | set(FORMER))


def _uses(names, text):
    pattern = re.compile(r"\.(" + "|".join(map(re.escape, names)) + r")\b")
    return [(i, line.strip()) for i, line in enumerate(text.splitlines(), start=1)
            if pattern.search(line)]


def test_the_check_finds_a_private_use():
    names = _private_names()
    assert {"_program", "_config", "_terms"} <= set(names)
    assert _uses(names, "y = model._program.forward(x)\nz = model.reverse_program")
    assert not _uses(names, "z = model.reverse_program.forward(x)\nw = self._programs")


def test_no_private_model_attribute_is_used_outside_model_py():
    names = _private_names()
    found = []
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel in ("keras_reversible/model.py", "tests/test_public_seams.py"):
                continue
            found += [f"{rel}:{i}: {line}" for i, line in _uses(names, path.read_text())]
    assert not found, "private ReversibleModel attributes used outside model.py:\n" + "\n".join(found)
