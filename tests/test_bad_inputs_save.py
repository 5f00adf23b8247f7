"""Faults while saving (issue 18): ``kill -9`` mid-save, leftovers of killed exports.

The kill tests start a child process that slows the writer down at a known
point (it writes a marker file, then sleeps), SIGKILL it there, and look at
what is left on disk.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest

import zoo
from keras_reversible import files

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = """
import os, sys, time
import keras
import zoo
target, marker, mode = sys.argv[1:4]
model = zoo.racecar_mi_net()

def stall(*args, **kwargs):
    open(marker, "w").close()
    time.sleep(120)

if mode == "save":
    # Called by keras.saving while the .keras zip is being written.
    original = type(model).save_own_variables
    def slow(self, store):
        original(self, store)
        stall()
    type(model).save_own_variables = slow
    model.save(target)
else:
    archive_class = type(keras.export.ExportArchive())  # the backend's subclass
    original = archive_class.write_out
    def slow(self, filepath, **kwargs):
        original(self, filepath, **kwargs)
        stall()
    archive_class.write_out = slow
    model.export(target, overwrite=True, verbose=False)
"""


def _kill_while_writing(tmp_path, target, mode):
    marker = tmp_path / "writing"
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(CHILD), str(target),
                              str(marker), mode], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while not marker.exists():
            assert child.poll() is None, child.stderr.read().decode()[-2000:]
            assert time.time() < deadline, "the child never reached the writer"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
    return child.pid


def _hidden(folder):
    return sorted(name for name in os.listdir(folder) if name.startswith("."))


def test_kill_during_save_leaves_the_previous_file(tmp_path):
    # Before: model.save wrote in place; a kill left a truncated fragment.
    path = tmp_path / "model.keras"
    old = zoo.racecar_mi_net()
    old.save(path)
    before = path.read_bytes()
    _kill_while_writing(tmp_path, path, "save")
    assert path.read_bytes() == before
    loaded = keras.saving.load_model(path)
    for a, b in zip(loaded.get_weights(), old.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert len(_hidden(tmp_path)) == 1  # the killed writer's temporary folder
    old.save(path)  # a later save removes it (its owner is dead)
    assert _hidden(tmp_path) == []


def test_kill_during_export_leaves_a_temp_that_the_next_export_removes(tmp_path):
    # Before: the hidden .exp.*.tmp folder stayed for good.
    path = tmp_path / "exp"
    model = zoo.racecar_mi_net()
    model.export(path, verbose=False)
    _kill_while_writing(tmp_path, path, "export")
    leftovers = _hidden(tmp_path)
    assert len(leftovers) == 1 and leftovers[0].startswith(".exp.")
    assert os.path.exists(path / "saved_model.pb")  # the previous export is intact
    model.export(path, overwrite=True, verbose=False)
    assert _hidden(tmp_path) == []


def _dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temps_which_are_removed_and_which_are_kept(tmp_path):
    path = tmp_path / "exp"
    host = files._host()
    dead, alive = _dead_pid(), os.getpid()
    names = {
        f".exp.{host}-{dead}.abc123.tmp": False,     # dead owner: removed
        f".exp.{host}-{alive}.abc123.tmp": True,     # running owner: kept
        f".exp.otherhost-{dead}.abc123.tmp": True,   # another host's: kept
        ".exp.fresh123.tmp": True,                   # no owner, recent: kept
        ".exp.stale123.tmp": False,                  # no owner, a day old: removed
        ".other.x-1.abc.tmp": True,                  # another path's: kept
    }
    for name in names:
        (tmp_path / name).mkdir()
        (tmp_path / name / "part").write_text("half")
    day_ago = time.time() - files.UNOWNED_TEMP_AGE_S - 60
    os.utime(tmp_path / ".exp.stale123.tmp", (day_ago, day_ago))
    files.remove_stale_temps(path)
    assert {n: (tmp_path / n).exists() for n in names} == names


def test_a_swapped_out_old_export_is_put_back(tmp_path):
    # Killed between "rename the previous export away" and "rename the new one in".
    path = tmp_path / "exp"
    old = tmp_path / f".exp.{files._host()}-{_dead_pid()}.abc123.old"
    old.mkdir()
    (old / "saved_model.pb").write_text("previous")
    files.remove_stale_temps(path)
    assert (path / "saved_model.pb").read_text() == "previous" and not old.exists()


def test_save_refuses_to_overwrite_without_overwrite(tmp_path):
    path = tmp_path / "model.keras"
    model = zoo.racecar_mi_net()
    model.save(path)
    with pytest.raises(FileExistsError, match="already exists"):
        model.save(path, overwrite=False)
    model.save_weights(tmp_path / "w.weights.h5")
    model.save_weights(tmp_path / "w.weights.h5")
    assert sorted(os.listdir(tmp_path)) == ["model.keras", "w.weights.h5"]
