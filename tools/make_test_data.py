"""Cuts the small real data subset committed under ``tests/data/`` from the full data.

    python tools/make_test_data.py --source ../shared/data --out tests/data

The suite runs on this subset when the full data (``../shared/data`` or
``$KERAS_REVERSIBLE_DATA``) is absent, as on a stranger's clone. Every file
keeps the name, format and array keys of its full-data original, so the
loaders read it unchanged; only the number of examples differs:

* ``mnist/``: the first ``MNIST_COUNTS`` images and labels of each split, as
  gzip-compressed IDX files (gzip header time 0: reruns are byte-identical);
* ``cifar10/``: the first ``CIFAR10_COUNT`` images of training batch 1 and of
  the test set (``cifar10_data_batch_1.npz``, ``cifar10_test.npz``);
* ``cifar100/``: the first ``CIFAR100_COUNT`` images of each split of
  ``cifar100_subset.npz`` (fine and coarse labels).

``SOURCE.md`` records the md5 of every source file and of every written file.
"""

import argparse
import gzip
import hashlib
import pathlib
import sys

import numpy as np

MNIST_COUNTS = {"train": 3000, "t10k": 1000}
CIFAR10_COUNT = 500
CIFAR100_COUNT = 100
_IDX_MAGIC = {1: 0x00000801, 3: 0x00000803}


def md5(path):
    return hashlib.md5(pathlib.Path(path).read_bytes()).hexdigest()


def read_idx_gz(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def write_idx_gz(path, array):
    header = _IDX_MAGIC[array.ndim].to_bytes(4, "big")
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0,
                                                 filename="") as f:
        f.write(header + np.ascontiguousarray(array, np.uint8).tobytes())


def cut_npz(source, out, count, keys):
    with np.load(source) as f:
        np.savez_compressed(out, **{k: f[k][:count] for k in keys})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=pathlib.Path, required=True,
                        help="the full data folder (holds mnist/, cifar10/, cifar100/)")
    parser.add_argument("--out", type=pathlib.Path, required=True, help="e.g. tests/data")
    args = parser.parse_args(argv)
    written, sources = [], []

    (args.out / "mnist").mkdir(parents=True, exist_ok=True)
    for split, count in MNIST_COUNTS.items():
        for kind in ("images-idx3", "labels-idx1"):
            name = f"{split}-{kind}-ubyte.gz"
            source = args.source / "mnist" / name
            write_idx_gz(args.out / "mnist" / name, read_idx_gz(source)[:count])
            sources.append(source)
            written.append(args.out / "mnist" / name)

    (args.out / "cifar10").mkdir(parents=True, exist_ok=True)
    for name, keys in (("cifar10_data_batch_1.npz", ("x_train", "y_train")),
                       ("cifar10_test.npz", ("x_test", "y_test"))):
        source = args.source / "cifar10" / name
        cut_npz(source, args.out / "cifar10" / name, CIFAR10_COUNT, keys)
        sources.append(source)
        written.append(args.out / "cifar10" / name)

    (args.out / "cifar100").mkdir(parents=True, exist_ok=True)
    source = args.source / "cifar100" / "cifar100_subset.npz"
    cut_npz(source, args.out / "cifar100" / "cifar100_subset.npz", CIFAR100_COUNT,
            ("x_train", "y_train_fine", "y_train_coarse", "x_test", "y_test_fine",
             "y_test_coarse"))
    sources.append(source)
    written.append(args.out / "cifar100" / "cifar100_subset.npz")

    lines = [
        "# Test data: a small real subset of the project's full data",
        "",
        "Written by `python tools/make_test_data.py --source <full data> --out tests/data`",
        "(see that script's docstring for what is cut). Each file keeps its original's",
        "name, format and array keys; only the example counts differ:",
        f"MNIST the first {MNIST_COUNTS['train']} training and {MNIST_COUNTS['t10k']} test "
        f"digits; CIFAR-10 the first {CIFAR10_COUNT} images of training batch 1 and of the "
        f"test set; CIFAR-100 the first {CIFAR100_COUNT} of each split of the local subset.",
        "The full data's own SOURCE.md files say where it comes from.",
        "",
        "| source file | md5 |",
        "| --- | --- |",
        *(f"| {s.parent.name}/{s.name} | {md5(s)} |" for s in sources),
        "",
        "| written file | bytes | md5 |",
        "| --- | ---: | --- |",
        *(f"| {w.relative_to(args.out)} | {w.stat().st_size} | {md5(w)} |" for w in written),
        "",
    ]
    (args.out / "SOURCE.md").write_text("\n".join(lines))
    total = sum(w.stat().st_size for w in written)
    print(f"wrote {len(written)} files, {total / 1e6:.2f} MB, to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
