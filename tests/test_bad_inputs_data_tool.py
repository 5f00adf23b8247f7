"""``python -m keras_reversible.data prepare mnist`` with bad IDX files (issue 18).

Every file is validated before the previous good copy is replaced; a bad one
is an error (exit status 1) that names the file.
"""

import re

import numpy as np
import pytest

from keras_reversible.data import __main__ as tool
from idx_files import write_idx as _write_idx


def _source(folder, train_labels=None, test_images=None):
    rng = np.random.default_rng(0)
    folder.mkdir()
    _write_idx(folder / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (12, 28, 28)))
    _write_idx(folder / "train-labels-idx1-ubyte.gz",
               rng.integers(0, 10, 12) if train_labels is None else train_labels)
    _write_idx(folder / "t10k-images-idx3-ubyte.gz",
               rng.integers(0, 256, (7, 28, 28)) if test_images is None else test_images)
    _write_idx(folder / "t10k-labels-idx1-ubyte.gz", rng.integers(0, 10, 7))
    return folder


@pytest.mark.parametrize("bad,match", [
    (dict(train_labels=np.zeros((12, 28, 28))), r"train-labels-idx1-ubyte.gz: expected labels"),
    (dict(train_labels=np.arange(5)), r"train-labels-idx1-ubyte.gz: 5 labels for the 12 images"),
    (dict(train_labels=np.r_[np.zeros(11), 200]), r"label 200 at index 11 is out of range 0..9"),
    (dict(test_images=np.arange(7)), r"t10k-images-idx3-ubyte.gz: expected images"),
    (dict(test_images=np.zeros((7, 14, 14))), r"t10k-images-idx3-ubyte.gz: images of shape"),
])
def test_bad_mnist_files_keep_the_previous_copy(tmp_path, capsys, bad, match):
    # Before: "wrote ...", exit 0, and the previous good copy was replaced.
    out = tmp_path / "prepared"
    good = _source(tmp_path / "good")
    assert tool.main(["prepare", "mnist", "--source", str(good), "--out", str(out),
                      "--no-progress"]) == 0
    before = {p.name: p.read_bytes() for p in (out / "mnist").iterdir()}
    capsys.readouterr()
    source = _source(tmp_path / "bad", **bad)
    assert tool.main(["prepare", "mnist", "--source", str(source), "--out", str(out),
                      "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "error:" in err
    assert re.search(match, err), err
    assert {p.name: p.read_bytes() for p in (out / "mnist").iterdir()} == before
    assert sorted(p.name for p in out.iterdir()) == ["mnist"]  # no temporary folder left
