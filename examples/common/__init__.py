"""Plumbing the example scripts share (results files, resumable runs, tables, figures).

Not part of the installed library: the scripts run as ``python examples/<script>.py``,
which puts this folder's parent on ``sys.path``, and import ``from common import experiment``.
"""
