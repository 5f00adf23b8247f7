"""Runs one pytest file under `bazel test` (the `main` of every py_test in BUILD).

BUILD passes the test file as the first argument, e.g. `args = ["tests/test_rules.py"]`;
bazel runs the test from the runfiles root, where that relative path exists.
"""

import sys

import pytest

if __name__ == "__main__":
    sys.exit(pytest.main([*sys.argv[1:], "-q", "-p", "no:cacheprovider"]))
