"""Runs the harness row of every keras.applications constructor, each in a fresh process.

``make test-applications-all`` calls this. One pytest process per constructor
(two at a time on 2 cores) frees each model's memory when its test ends: in
one long pytest worker the memory grows test by test (a worker reached
14.8 GB and was killed for memory on this 24 GB machine), while the largest
constructor alone stays far below that. Prints one line per constructor
(result, seconds, peak memory) and ``N passed, N failed`` at the end; exits
1 when any failed.

Usage:
    python tools/each_application.py [--jobs=2] [NAME ...]   # default: all 40
"""

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST = "tests/test_applications.py::test_every_application_constructor"


def constructors():
    import keras

    return sorted(name for name in dir(keras.applications) if name[0].isupper())


def run_one(name):
    """(name, passed, seconds, peak RSS in GB, the output's tail)."""
    start = time.time()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout=3600",
         f"{TEST}[{name}]"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env=dict(os.environ, KR_ALL_APPLICATIONS="1"))
    output = proc.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return name, proc.returncode == 0, time.time() - start, usage.ru_maxrss / 2**20, output


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="constructors (default: all)")
    parser.add_argument("--jobs", type=int, default=2, help="processes at a time")
    args = parser.parse_args(argv)
    known = constructors()
    unknown = sorted(set(args.names) - set(known))
    if unknown:
        parser.error(f"not keras.applications constructors: {unknown}")
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    names = args.names or known
    print(f"{len(names)} constructors, {args.jobs} at a time, one process each", flush=True)
    failed = []
    with ThreadPoolExecutor(args.jobs) as pool:
        for name, passed, seconds, peak, output in pool.map(run_one, names):
            print(f"  {name:<20} {'passed' if passed else 'FAILED'}  {seconds:6.0f} s  "
                  f"peak {peak:5.1f} GB", flush=True)
            if not passed:
                failed.append(name)
                print(output[-3000:], flush=True)
    print(f"{len(names) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
