"""The README's Python snippets run, in order, in one namespace."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_snippets_run(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 3, "the README lost its examples"
    namespace = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"README.md[python block {i}]", "exec"), namespace)
    printed = capsys.readouterr().out
    assert "['accuracy', 'loss', 'racecar_loss', 'task_loss']" in printed
    assert namespace["x_regen"].shape == namespace["x"].shape
    assert len(namespace["pairs"]) == 3
    assert namespace["model"].num_constrained == 16


def test_readme_shows_the_two_commands():
    text = README.read_text()
    assert "make test" in text and "make demo" in text
