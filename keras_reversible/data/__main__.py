"""``python -m keras_reversible.data prepare NAME --source PATH [--out DIR]``.

Turns local files into the folders the loaders read, under ``OUT/NAME/``
(default ``OUT`` = ``./prepared_data``; default ``--source``: see
``default_source``):

- ``mnist``, ``fashion_mnist``: the four IDX files of ``--source``, checked
  with ``read_idx`` and as pairs (3-D images, 1-D labels, as many labels as
  images, labels in 0..9, the same image size in both splits), then copied
  (read with ``data_dir=OUT/NAME``);
- ``motion_blur_mnist``: ``train.npz`` / ``test.npz`` (``x`` uint8, ``y``) +
  ``.json`` parameters from the MNIST IDX files of ``--source``
  (``load_motion_blur_mnist_arrays(cache_dir=OUT/motion_blur_mnist)``);
- ``cifar10``, ``cifar100``: ``train.npz`` / ``test.npz`` (``x``, ``y``, and for
  CIFAR-100 ``y_coarse``) from the official python pickles or the project's
  .npz files in ``--source`` (``load_cifar_arrays(data_dir=OUT/NAME)``);
- ``smoke``: simulates (no ``--source``) into the cache
  (``load_smoke_arrays(cache_dir=OUT/smoke, ...)``).

Everything is first written to a temporary folder beside ``OUT/NAME`` and
renamed into place only when complete, so a missing or corrupt input (the
error names the file; exit status 1) leaves no half-written output.
"""

import argparse
import pathlib
import shutil
import sys
import tempfile

NAMES = ("mnist", "fashion_mnist", "motion_blur_mnist", "cifar10", "cifar100", "smoke")
IDX_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _idx_path(source, stem):
    for name in (stem + ".gz", stem):
        if (source / name).is_file():
            return source / name
    raise FileNotFoundError(f"{source / (stem + '.gz')}: not found (nor {source / stem})")


NUM_CLASSES = 10  # MNIST and Fashion-MNIST


def _check_idx_pair(images_path, images, labels_path, labels):
    """Raises ``ValueError`` (naming the file) unless the two IDX arrays are an (images, labels) pair."""
    if images.ndim != 3:
        raise ValueError(f"{images_path}: expected images (a 3-D IDX file: count, rows, "
                         f"columns), got an array of shape {images.shape}")
    if labels.ndim != 1:
        raise ValueError(f"{labels_path}: expected labels (a 1-D IDX file), got an array "
                         f"of shape {labels.shape}")
    if len(labels) != len(images):
        raise ValueError(f"{labels_path}: {len(labels)} labels for the {len(images)} images "
                         f"of {images_path}")
    if len(labels) and labels.max() >= NUM_CLASSES:
        raise ValueError(f"{labels_path}: label {int(labels.max())} at index "
                         f"{int(labels.argmax())} is out of range 0..{NUM_CLASSES - 1}")


def _prepare_idx(source, tmp, bar):
    from keras_reversible.data.mnist import read_idx

    paths = {stem: _idx_path(source, stem) for stem in IDX_STEMS}
    # read_idx raises ValueError naming the file if it is corrupt.
    arrays = {stem: read_idx(path) for stem, path in paths.items()}
    for images, labels in (IDX_STEMS[:2], IDX_STEMS[2:]):
        _check_idx_pair(paths[images], arrays[images], paths[labels], arrays[labels])
    if arrays[IDX_STEMS[0]].shape[1:] != arrays[IDX_STEMS[2]].shape[1:]:
        raise ValueError(f"{paths[IDX_STEMS[2]]}: images of shape "
                         f"{arrays[IDX_STEMS[2]].shape[1:]}, but the training images of "
                         f"{paths[IDX_STEMS[0]]} are {arrays[IDX_STEMS[0]].shape[1:]}")
    for path in paths.values():
        shutil.copyfile(path, tmp / path.name)
        bar.update(1)


def _prepare_motion_blur(source, tmp, bar, args):
    from keras_reversible.data.motion_blur import load_motion_blur_mnist_arrays

    for stem in IDX_STEMS:
        _idx_path(source, stem)  # Name a missing file before any work.
    for split in ("train", "test"):
        load_motion_blur_mnist_arrays(split, data_dir=source, length=args.length,
                                      angle=args.angle, cache_dir=tmp, source="local")
        bar.update(1)


def _prepare_cifar(name, source, tmp, bar):
    from keras_reversible.data import cache as cache_lib
    from keras_reversible.data.cifar import load_cifar_arrays

    for split in ("train", "test"):
        x, y = load_cifar_arrays(name, split, data_dir=source, source="local")
        arrays = {"x": x, "y": y}
        if name == "cifar100":
            arrays["y_coarse"] = load_cifar_arrays(name, split, data_dir=source, source="local",
                                                   label_mode="coarse")[1]
        cache_lib.atomic_save_npz(tmp / f"{split}.npz", **arrays)
        bar.update(1)


def default_source(name):
    """The folder ``prepare NAME`` reads when ``--source`` is not given, or None.

    ``mnist`` and ``motion_blur_mnist``: ``$KERAS_REVERSIBLE_DATA/mnist``;
    ``fashion_mnist``: Debian's ``/usr/share/datasets/fashion-mnist``;
    ``cifar10``/``cifar100``: ``$KERAS_REVERSIBLE_DATA/<name>``.
    """
    from keras_reversible.data.mnist import FASHION_MNIST_DEBIAN_DIR
    from keras_reversible.data.paths import local_data_dir

    if name == "fashion_mnist":
        return FASHION_MNIST_DEBIAN_DIR
    root = local_data_dir()
    if root is None or name == "smoke":
        return None
    return root / ("mnist" if name == "motion_blur_mnist" else name)


def prepare(name, source=None, out="prepared_data", progress=True, **options):
    """Runs ``prepare`` for one data set; returns the output folder ``OUT/NAME``."""
    from keras_reversible.data import cache as cache_lib

    if name not in NAMES:
        raise ValueError(f"name must be one of {NAMES}, got {name!r}")
    out = pathlib.Path(out)
    final = out / name
    args = argparse.Namespace(**options)
    if name != "smoke":
        if source is None:
            source = default_source(name)
        if source is None:
            raise ValueError(f"prepare {name} needs --source (the folder with the input files)")
        source = pathlib.Path(source)
        if not source.is_dir():
            raise FileNotFoundError(f"{source}: not found (--source must be a folder)")
    out.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(dir=out, prefix=f".{name}.tmp-"))
    try:
        if name == "smoke":
            from keras_reversible.data.smoke import load_smoke_arrays

            if final.is_dir():  # Keep earlier cache entries of other parameters.
                for f in final.iterdir():
                    if f.is_file():
                        shutil.copy2(f, tmp / f.name)
            d = load_smoke_arrays(args.num_simulations, args.num_frames, args.resolution,
                                  args.downsample, args.seed, cache_dir=tmp, progress=progress)
            how = (f"cached (simulated earlier in {d['seconds']:.1f} s)" if d["cached"]
                   else f"simulated in {d['seconds']:.1f} s")
            print(f"smoke: high {d['high'].shape}, low {d['low'].shape}, {how}")
        else:
            steps = 4 if name in ("mnist", "fashion_mnist") else 2
            with cache_lib.Progress(steps, f"prepare {name}", enabled=progress) as bar:
                if name in ("mnist", "fashion_mnist"):
                    _prepare_idx(source, tmp, bar)
                elif name == "motion_blur_mnist":
                    _prepare_motion_blur(source, tmp, bar, args)
                else:
                    _prepare_cifar(name, source, tmp, bar)
        tmp.chmod(0o755)
        cache_lib.replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def main(argv=None):
    from keras_reversible.data.motion_blur import DEFAULT_ANGLE, DEFAULT_LENGTH

    parser = argparse.ArgumentParser(prog="python -m keras_reversible.data",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="turn local files into the arrays the loaders read")
    p.add_argument("name", choices=NAMES)
    p.add_argument("--source", help="folder with the input files (not for smoke); default: "
                   "$KERAS_REVERSIBLE_DATA/<name> ($KERAS_REVERSIBLE_DATA/mnist for motion_blur_mnist), "
                   "/usr/share/datasets/fashion-mnist for fashion_mnist")
    p.add_argument("--out", default="prepared_data", help="output root (default ./prepared_data)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--length", type=float, default=DEFAULT_LENGTH, help="motion blur length (px)")
    p.add_argument("--angle", type=float, default=DEFAULT_ANGLE, help="motion blur angle (deg)")
    p.add_argument("--num-simulations", type=int, default=20)
    p.add_argument("--num-frames", type=int, default=120)
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--downsample", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    a = parser.parse_args(argv)
    try:
        final = prepare(a.name, a.source, a.out, progress=not a.no_progress, length=a.length,
                        angle=a.angle, num_simulations=a.num_simulations,
                        num_frames=a.num_frames, resolution=a.resolution,
                        downsample=a.downsample, seed=a.seed)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {final}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
