"""keras_reversible.files: atomic file writes."""

import os

import pytest

from keras_reversible import files


def test_atomic_path_leaves_nothing_behind_on_failure(tmp_path):
    target = tmp_path / "out" / "fig.png"
    with pytest.raises(RuntimeError):
        with files.atomic_path(target) as tmp:
            open(tmp, "w").write("half")
            raise RuntimeError("crash while writing")
    assert os.listdir(tmp_path / "out") == []
    with files.atomic_path(target) as tmp:
        open(tmp, "w").write("whole")
    assert target.read_text() == "whole" and os.listdir(tmp_path / "out") == ["fig.png"]
