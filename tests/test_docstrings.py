"""Every docstring example of the package runs, as keras-hub runs its own.

Two forms are collected from the docstrings of every module, class,
function and method under ``keras_reversible`` and ``zoo``:

* fenced ```` ```python ```` blocks, each run as a whole program in a fresh
  namespace (with the imports below already done, as a reader would have them);
* ``>>>`` examples, checked by ``doctest`` against the output they show.

The data examples read ``KERAS_REVERSIBLE_DATA`` (tests/conftest.py sets it
to the full data or the tests/data subset), so they run offline.
"""

import doctest
import importlib
import inspect
import pathlib
import pkgutil
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("keras_reversible", "zoo")
PREAMBLE = {
    "keras": "keras",
    "np": "numpy",
    "tf": "tensorflow",
    "kr": "keras_reversible",
    "zoo": "zoo",
}
FENCE = re.compile(r"```python\n(.*?)```", flags=re.S)


def _modules():
    for name in PACKAGES:
        package = importlib.import_module(name)
        yield package
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{name}."):
            if not info.name.endswith("__main__"):
                yield importlib.import_module(info.name)


def _documented(module):
    """(qualified name, object) for the module and what it defines."""
    yield module.__name__, module
    for name, obj in vars(module).items():
        if getattr(obj, "__module__", None) != module.__name__ or name.startswith("_"):
            continue
        if inspect.isclass(obj):
            yield f"{module.__name__}.{name}", obj
            for attr, member in vars(obj).items():
                member = getattr(member, "fget", None) or getattr(member, "__func__", member)
                if callable(member) and (not attr.startswith("_") or attr == "__init__"):
                    yield f"{module.__name__}.{name}.{attr}", member
        elif inspect.isfunction(obj):
            yield f"{module.__name__}.{name}", obj


def _examples():
    seen = set()
    for module in _modules():
        for qualname, obj in _documented(module):
            doc = inspect.getdoc(obj) or ""
            if id(obj) in seen or not doc:
                continue
            seen.add(id(obj))
            for i, block in enumerate(FENCE.findall(doc)):
                yield pytest.param("fenced", qualname, block, id=f"{qualname}[{i}]")
            if ">>>" in doc:
                yield pytest.param("doctest", qualname, doc, id=f"{qualname}[doctest]")


EXAMPLES = list(_examples())


def _namespace():
    return {name: importlib.import_module(module) for name, module in PREAMBLE.items()}


@pytest.mark.parametrize("form, qualname, text", EXAMPLES)
def test_docstring_example_runs(form, qualname, text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write here
    if form == "fenced":
        exec(compile(text, f"<docstring of {qualname}>", "exec"), _namespace())
        return
    parser = doctest.DocTestParser()
    test = parser.get_doctest(text, _namespace(), qualname, None, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test, out=lambda s: pytest.fail(s, pytrace=False))
    assert runner.failures == 0


def test_the_examples_are_collected():
    # Guards the collector itself: a regex or import change that finds nothing
    # would make every example pass vacuously.
    fenced = [p for p in EXAMPLES if p.values[0] == "fenced"]
    doctests = [p for p in EXAMPLES if p.values[0] == "doctest"]
    assert len(fenced) >= 20 and len(doctests) >= 5, (len(fenced), len(doctests))
    names = {p.values[1] for p in EXAMPLES}
    assert "keras_reversible.model.ReversibleModel" in names
    assert "keras_reversible.registry.register_reverse_rule" in names
