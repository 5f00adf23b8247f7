"""Shared fixtures, and where the suite's data comes from.

The full data (``$KERAS_REVERSIBLE_DATA``, else ``../shared/data`` beside the
repository) is used when present; otherwise the small real subset committed
under ``tests/data/`` (cut by ``tools/make_test_data.py``). Either way
``KERAS_REVERSIBLE_DATA`` is set for the session, so the loaders' defaults
and the example scripts run in subprocesses read the same folder. Tests that
need the full data ask for ``full_data``: skipped, naming the missing folder,
when it is absent, and failed instead under ``CI=true`` (CI always has it).
"""

import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SUBSET = REPO / "tests" / "data"
SHARED = REPO.parent / "shared" / "data"
ENV_VAR = "KERAS_REVERSIBLE_DATA"


def _wanted_full_data():
    # xdist workers inherit the variable this module sets below: the subset
    # there means the full data was missing.
    env = os.environ.get(ENV_VAR)
    if not env or pathlib.Path(env).resolve() == SUBSET.resolve():
        return SHARED.resolve()
    return pathlib.Path(env).resolve()


WANTED = _wanted_full_data()
FULL_DATA = WANTED if WANTED.is_dir() else None
DATA_ROOT = FULL_DATA or SUBSET
os.environ[ENV_VAR] = str(DATA_ROOT)


@pytest.fixture(scope="session")
def data_root():
    """The data folder in use: the full data when present, else ``tests/data``."""
    return DATA_ROOT


@pytest.fixture(scope="session")
def full_data():
    """The full data folder (official counts: MNIST 60,000/10,000, CIFAR-10 50,000/10,000).

    Skips when it is absent, naming the folder; fails instead under ``CI=true``.
    """
    if FULL_DATA is None:
        message = (f"needs the full data folder ({WANTED} is missing; set {ENV_VAR} to the "
                   "folder holding mnist/, cifar10/, ...)")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true: {message}", pytrace=False)
        pytest.skip(message)
    return FULL_DATA


@pytest.fixture(autouse=True)
def _deterministic_weights():
    """Every test starts from the same Python, NumPy and Keras seeds."""
    import keras

    keras.utils.set_random_seed(0)
