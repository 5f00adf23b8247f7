"""The studies of `make studies` keep their runs in git, so a study resumes in a new checkout.

A session can end at any minute and only what is committed survives: each study's
``runs/`` (per-epoch logs, finished runs, the ``BackupAndRestore`` folder) must be
tracked, while the second backup copy and the finished weights the study does not
ship stay local. Reads the Makefile's ``STUDIES`` and asks ``git check-ignore``.
"""

import pathlib
import re
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _study_folders():
    makefile = (ROOT / "Makefile").read_text()
    block = re.search(r"^STUDIES := \\\n(.*?)\n\n", makefile, flags=re.S | re.M).group(1)
    outs = re.findall(r"--out=\.\./(\S+?)\"", block)
    assert outs, "the Makefile's STUDIES lost their --out folders"
    return outs


def _ignored(path):
    result = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT)
    assert result.returncode in (0, 1), f"git check-ignore failed on {path}"
    return result.returncode == 0


@pytest.mark.skipif(not (ROOT / ".git").exists() or shutil.which("git") is None,
                    reason="needs the git checkout (not in Bazel's sandbox)")
@pytest.mark.parametrize("folder", _study_folders() if (ROOT / "Makefile").exists() else [])
def test_a_study_keeps_its_runs_and_backups_in_git(folder):
    runs = f"{folder}/runs"
    for kept in ("x-seed0.json", "x-seed0.epochs.json", "x-seed0.backup/latest.weights.h5",
                 "x-seed0.backup/training_metadata.json"):
        assert not _ignored(f"{runs}/{kept}"), f"{folder}/.gitignore leaves {kept} out"
    assert _ignored(f"{runs}/x-seed0.backup/latest.weights.h5.bkp"), \
        f"{folder}/.gitignore keeps the second backup copy (double the size, no use)"
