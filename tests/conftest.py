"""Shared fixtures."""

import pytest

from keras_reversible import data


@pytest.fixture(scope="session")
def shared_data():
    """The project's ``shared/data`` folder (``keras_reversible.data.shared_data_dir()``).

    Fails, not skips, when it is missing: CI always clones it beside the repo.
    """
    path = data.shared_data_dir()
    if path is None:
        pytest.fail("shared data folder not found: expected <repo>/../shared/data (or "
                    "shared/data above the working directory), or set KERAS_REVERSIBLE_DATA "
                    "to the folder holding mnist/, mi_sphere/, ...", pytrace=False)
    return path


@pytest.fixture(autouse=True)
def _deterministic_weights():
    """Every test starts from the same Python, NumPy and Keras seeds."""
    import keras

    keras.utils.set_random_seed(0)
