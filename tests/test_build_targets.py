"""The top-level Bazel BUILD lists every module, script and test file that exists.

No bazel needed: BUILD is executed as Python with stand-ins for the few rules it
uses (py_library, py_binary, py_test, filegroup, glob, ...), globs are resolved
against the repository with Python's glob, and the result is compared with the
files on disk. When this fails, its message names the file and the target to add.
"""

import glob as globlib
import pathlib
import re
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
RUNNER = "tools/bazel_pytest_runner.py"
SIZES = ("small", "medium", "large", "enormous")


class BuildFile:
    """The targets that BUILD declares, with globs resolved against `root`."""

    RULES = ("py_library", "py_binary", "py_test", "filegroup")

    def __init__(self, root):
        self.root = pathlib.Path(root)
        self.targets = {}  # name -> dict(kind=..., attrs=...)
        self.duplicates = []
        text = (self.root / "BUILD").read_text()
        # Starlark `load(...)` statements are not Python expressions worth running.
        text = re.sub(r"^load\(.*?\)\s*$", "", text, flags=re.M | re.S)
        namespace = {rule: self._rule(rule) for rule in self.RULES}
        namespace.update(
            glob=self._glob,
            package=lambda **kw: None,
            exports_files=lambda *a, **kw: None,
            licenses=lambda *a, **kw: None,
            select=lambda d: [x for v in d.values() for x in v],
            __builtins__={"len": len, "sorted": sorted, "True": True, "False": False},
        )
        exec(compile(text, str(self.root / "BUILD"), "exec"), namespace)

    def _rule(self, kind):
        def declare(name, **attrs):
            if name in self.targets:
                self.duplicates.append(name)
            self.targets[name] = {"kind": kind, "attrs": attrs}
        return declare

    def _glob(self, include, exclude=(), exclude_directories=1, allow_empty=True):
        def expand(patterns):
            found = set()
            for pattern in patterns:
                for path in globlib.glob(str(self.root / pattern), recursive=True):
                    if pathlib.Path(path).is_file() or not exclude_directories:
                        found.add(pathlib.Path(path).relative_to(self.root).as_posix())
            return found
        return sorted(expand(include) - expand(exclude))

    def files(self, name, attr="srcs", _seen=()):
        """Repository-relative paths in a target's `attr`, following ':label' filegroups."""
        paths = []
        for entry in self.targets[name]["attrs"].get(attr, []):
            label = _label(entry)
            if label is None:
                paths.append(entry)
            elif label in self.targets and label not in _seen:
                paths += self.files(label, "srcs", _seen + (name,))
        return paths

    def named(self, kind):
        return {n: t for n, t in self.targets.items() if t["kind"] == kind}

    def covered(self, kind):
        """Every file in the srcs of a target of `kind`."""
        return {f for name in self.named(kind) for f in self.files(name)}


def _label(entry):
    """'x' for ':x' or '//:x'; None for a plain file name."""
    m = re.fullmatch(r"(?://)?:([\w.+-]+)", entry)
    return m.group(1) if m else None


def _on_disk(root, *patterns):
    root = pathlib.Path(root)
    return sorted(
        pathlib.Path(p).relative_to(root).as_posix()
        for pattern in patterns
        for p in globlib.glob(str(root / pattern), recursive=True)
        if pathlib.Path(p).is_file()
    )


def _test_target(path):
    name = pathlib.PurePosixPath(path).stem
    size = "large" if "train" in name or "example" in name else "medium"
    return textwrap.dedent(f"""\
        py_test(
            name = "{name}",
            size = "{size}",
            srcs = [
                "{RUNNER}",
                "{path}",
            ],
            args = ["{path}"],
            main = "{RUNNER}",
            python_version = "PY3",
            deps = [
                ":keras_reversible",
                ":test_support",
                ":zoo",
            ],
        )""")


def _binary_target(path):
    name = pathlib.PurePosixPath(path).stem
    return textwrap.dedent(f"""\
        py_binary(
            name = "{name}",
            srcs = ["{path}"],
            main = "{path}",
            python_version = "PY3",
            deps = [
                ":keras_reversible",
                ":zoo",
            ],
        )""")


def missing_tests(root):
    build = BuildFile(root)
    covered = build.covered("py_test")
    return [
        f"{path} has no py_test in BUILD; add this target to the top-level BUILD "
        f"(size \"large\" if it trains for minutes):\n{_test_target(path)}"
        for path in _on_disk(root, "tests/test_*.py")
        if path not in covered
    ]


def broken_tests(root):
    """py_tests that would not run their file: wrong main/args, or no size."""
    build = BuildFile(root)
    problems = []
    for name, target in build.named("py_test").items():
        attrs = target["attrs"]
        test_files = [f for f in build.files(name) if re.search(r"(^|/)test_[^/]*\.py$", f)]
        if len(test_files) != 1:
            problems.append(f"py_test '{name}' in BUILD must list exactly one tests/test_*.py "
                            f"in srcs, it lists {test_files}")
            continue
        if attrs.get("main") != RUNNER or RUNNER not in build.files(name):
            problems.append(f"py_test '{name}' in BUILD must have main = \"{RUNNER}\" "
                            f"and list it in srcs")
        if list(attrs.get("args", [])) != test_files:
            problems.append(f"py_test '{name}' in BUILD must have args = {test_files!r} "
                            f"(the runner runs the files named in args); it has "
                            f"{attrs.get('args')!r}")
        if attrs.get("size") not in SIZES:
            problems.append(f"py_test '{name}' in BUILD needs size = \"medium\" "
                            f"(or \"small\"/\"large\"); it has {attrs.get('size')!r}")
    return problems


def missing_binaries(root):
    build = BuildFile(root)
    covered = build.covered("py_binary")
    return [
        f"{path} has no py_binary in BUILD; add this target to the top-level BUILD:\n"
        f"{_binary_target(path)}"
        for path in _on_disk(root, "examples/*.py", "benchmarks/*.py")
        if path not in covered
    ]


def missing_modules(root):
    build = BuildFile(root)
    covered = build.covered("py_library")
    problems = []
    for path in _on_disk(root, "keras_reversible/**/*.py", "zoo/**/*.py"):
        if path not in covered:
            package = path.split("/")[0]
            problems.append(
                f"{path} is in no py_library's srcs in BUILD; add it to the srcs of "
                f"py_library(name = \"{package}\") (e.g. glob([\"{package}/**/*.py\"]))")
    for path in _on_disk(root, "tests/*.py"):
        if re.fullmatch(r"tests/test_[^/]*\.py", path):
            continue  # missing_tests reports these
        if path not in build.covered("py_test") | build.covered("py_library"):
            problems.append(
                f"{path} is in no target's srcs in BUILD; a test helper belongs in "
                f"py_library(name = \"test_support\"), a test_*.py file in its own py_test")
    return problems


def nonexistent_files(root):
    build = BuildFile(root)
    root = pathlib.Path(root)
    problems = []
    for name, target in sorted(build.targets.items()):
        for attr in ("srcs", "data", "main"):
            entries = target["attrs"].get(attr, [])
            for entry in [entries] if isinstance(entries, str) else entries:
                if _label(entry) is not None:
                    if _label(entry) not in build.targets:
                        problems.append(f"{target['kind']} '{name}' in BUILD names "
                                        f"'{entry}' in {attr}, and BUILD has no such target")
                elif entry.startswith(("//", "@")):
                    continue
                elif not (root / entry).is_file():
                    problems.append(f"{target['kind']} '{name}' in BUILD lists {entry} in "
                                    f"{attr}, and that file does not exist: remove it or "
                                    f"add the file")
    return problems


def duplicate_names(root):
    return [f"BUILD declares target '{n}' more than once" for n in BuildFile(root).duplicates]


CHECKS = [missing_tests, broken_tests, missing_binaries, missing_modules,
          nonexistent_files, duplicate_names]


# ----------------------------------------------------------- the real BUILD

@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_build_matches_the_repository(check):
    problems = check(ROOT)
    assert not problems, "\n\n".join(problems)


def test_build_declares_the_expected_kinds_of_targets():
    build = BuildFile(ROOT)
    assert {"keras_reversible", "zoo"} <= set(build.named("py_library"))
    assert "keras_reversible/__init__.py" in build.files("keras_reversible")
    tests = build.named("py_test")
    assert len(tests) == len(_on_disk(ROOT, "tests/test_*.py")) > 0
    assert "test_build_targets" in tests


# ------------------------------------------ the checks fail when they should

GOOD_BUILD = '''
load("@rules_python//python:defs.bzl", "py_library")
py_library(name = "keras_reversible", srcs = glob(["keras_reversible/**/*.py"]),
           data = glob(["keras_reversible/**/*.mat"]))
py_library(name = "zoo", srcs = glob(["zoo/**/*.py"]))
py_library(name = "test_support", srcs = glob(["tests/*.py"],
           exclude = ["tests/test_*.py"]))
filegroup(name = "example_scripts", srcs = glob(["examples/*.py"]))
py_binary(name = "demo", srcs = ["examples/demo.py"], main = "examples/demo.py")
py_test(name = "test_a", size = "medium",
        srcs = ["tools/bazel_pytest_runner.py", "tests/test_a.py"],
        args = ["tests/test_a.py"], main = "tools/bazel_pytest_runner.py",
        data = [":example_scripts"])
'''


@pytest.fixture
def fake_repo(tmp_path):
    for path in ("keras_reversible/__init__.py", "keras_reversible/sub/deep.py",
                 "keras_reversible/data/w.mat", "zoo/__init__.py", "examples/demo.py",
                 "tests/conftest.py", "tests/test_a.py", RUNNER):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("")
    (tmp_path / "BUILD").write_text(GOOD_BUILD)
    return tmp_path


def _all_problems(root):
    return [p for check in CHECKS for p in check(root)]


def test_checks_pass_on_a_consistent_fake_repo(fake_repo):
    assert _all_problems(fake_repo) == []
    build = BuildFile(fake_repo)
    assert build.files("keras_reversible") == ["keras_reversible/__init__.py",
                                               "keras_reversible/sub/deep.py"]
    assert build.files("test_a", "data") == ["examples/demo.py"]


def test_new_test_file_without_py_test_fails(fake_repo):
    (fake_repo / "tests/test_new_thing.py").write_text("")
    [problem] = missing_tests(fake_repo)
    assert problem.startswith("tests/test_new_thing.py has no py_test in BUILD")
    assert 'name = "test_new_thing"' in problem and 'args = ["tests/test_new_thing.py"]' in problem


def test_new_script_without_py_binary_fails(fake_repo):
    (fake_repo / "benchmarks").mkdir()
    (fake_repo / "benchmarks/speed.py").write_text("")
    (fake_repo / "examples/other.py").write_text("")
    problems = missing_binaries(fake_repo)
    assert len(problems) == 2
    assert problems[0].startswith("benchmarks/speed.py has no py_binary in BUILD")
    assert 'name = "other"' in problems[1]


def test_module_outside_every_library_fails(fake_repo):
    (fake_repo / "BUILD").write_text(GOOD_BUILD.replace('glob(["zoo/**/*.py"])',
                                                        '["zoo/__init__.py"]'))
    (fake_repo / "zoo/new_net.py").write_text("")
    (fake_repo / "tests/helpers_orphan.py").write_text("")
    (fake_repo / "BUILD").write_text((fake_repo / "BUILD").read_text().replace(
        'glob(["tests/*.py"],', 'glob(["tests/conftest.py"],'))
    problems = missing_modules(fake_repo)
    assert len(problems) == 2, problems
    assert 'zoo/new_net.py is in no py_library\'s srcs in BUILD; add it to the srcs of py_library(name = "zoo")' in problems[0]
    assert problems[1].startswith("tests/helpers_orphan.py is in no target's srcs")


def test_srcs_naming_a_missing_file_fails(fake_repo):
    (fake_repo / "examples/demo.py").unlink()
    problems = nonexistent_files(fake_repo)
    assert problems == [
        "py_binary 'demo' in BUILD lists examples/demo.py in srcs, and that file does not "
        "exist: remove it or add the file",
        "py_binary 'demo' in BUILD lists examples/demo.py in main, and that file does not "
        "exist: remove it or add the file",
    ]


def test_unknown_label_and_bad_py_test_fail(fake_repo):
    (fake_repo / "BUILD").write_text(
        GOOD_BUILD.replace('data = [":example_scripts"]', 'data = [":nope"]')
                  .replace('args = ["tests/test_a.py"], ', '')
                  .replace('size = "medium",', ''))
    assert nonexistent_files(fake_repo) == [
        "py_test 'test_a' in BUILD names ':nope' in data, and BUILD has no such target"]
    problems = broken_tests(fake_repo)
    assert len(problems) == 2 and "args = ['tests/test_a.py']" in problems[0]
    assert 'needs size = "medium"' in problems[1]


def test_duplicate_target_fails(fake_repo):
    (fake_repo / "BUILD").write_text(GOOD_BUILD + GOOD_BUILD.split("\n", 2)[2])
    assert "BUILD declares target 'keras_reversible' more than once" in duplicate_names(fake_repo)
