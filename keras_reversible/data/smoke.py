"""Simulated 2-D smoke plumes (racecar paper §5.3, appendix A.4), made with phiflow.

The paper generated 20 simulations × 120 frames with a standard fluid solver
(Stam 1999) using MacCormack advection and a MiC-preconditioned CG pressure
solve in mantaflow, randomising the smoke inflow region, the inflow velocity
and the buoyancy force; low-res data = high-res (64×64) down-sampled by 4
(16×16); flips and rotations as augmentation; 10% of the data for training.

Here the solver is ``phiflow`` (``pip install phiflow``, extra ``smoke``), on
a closed box of ``resolution × resolution`` cells of size 1, one step per frame
(dt = 1):

- density: ``advect.mac_cormack``, plus ``inflow_rate × soft disc mask`` each step;
- velocity: ``advect.semi_lagrangian`` self-advection, plus the buoyancy force
  ``(0, buoyancy × density)``, then inside the inflow disc the velocity is set
  to the inflow velocity, then ``fluid.make_incompressible`` with
  ``Solve('auto', 1e-3, 1e-3, x0=previous pressure)`` (a tolerance of 1e-5
  raised ``Diverged`` on this machine; phiflow chooses the solver, not MiC-CG).

Per simulation, drawn from ``numpy.random.default_rng(seed)`` (units: cells and
cells/step, scaled with ``resolution / 64``): inflow disc centre x ∈ U(0.3, 0.7)·n,
y ∈ U(0.08, 0.2)·n from the bottom, radius ∈ U(0.04, 0.08)·n; inflow velocity
vx ∈ U(-0.3, 0.3), vy ∈ U(0.2, 1.0); buoyancy ∈ U(0.05, 0.2); inflow rate 0.2.

Frames are the density after each step, float32, row 0 at the top (y up the
image), clipped at 0. ``low = high`` average-pooled over 4×4 blocks (the
``downsample`` factor): ``low[i, j] = high[4i:4i+4, 4j:4j+4].mean()``.

Generated arrays are cached as ``.npz`` + ``.json`` (the generation
parameters) under ``cache_dir`` (default ``~/.keras/datasets/keras_reversible/smoke``),
written atomically and reused when the parameters match (see ``cache``).
Timings on this machine (2 CPU cores): one 64×64, 120-frame simulation
28-33 s; the paper's full 20 × 120 set 853 s (14 min, with tests running on
the other core; 20 MB of cache); 2 × 5 frames at 32×32 about 3 s.
"""

import pathlib
import time

import numpy as np
import tensorflow as tf

from keras_reversible.data import cache as cache_lib
from keras_reversible.extras import import_extra

DEFAULTS = {"num_simulations": 20, "num_frames": 120, "resolution": 64, "downsample": 4}
PARAM_RANGES = {
    "inflow_x": (0.3, 0.7), "inflow_y": (0.08, 0.2), "inflow_radius": (0.04, 0.08),
    "inflow_vx": (-0.3, 0.3), "inflow_vy": (0.2, 1.0), "buoyancy": (0.05, 0.2),
}
INFLOW_RATE = 0.2
SOLVE_TOLERANCE = 1e-3
_VERSION = 1


def smoke_parameters(num_simulations=20, num_frames=120, resolution=64, downsample=4, seed=0):
    """The full, JSON-able generation parameters (including each simulation's draws).

    Returns:
        dict: the settings and ``"simulations"``, a list of per-simulation dicts
        (``inflow_x``, ``inflow_y``, ``inflow_radius`` in cells, ``inflow_vx``,
        ``inflow_vy`` in cells/step, ``buoyancy``).
    """
    for key, value in (("num_simulations", num_simulations), ("num_frames", num_frames),
                       ("resolution", resolution), ("downsample", downsample)):
        if int(value) != value or value < 1:
            raise ValueError(f"{key} must be a positive integer, got {value!r}")
    if resolution % downsample:
        raise ValueError(f"resolution {resolution} must be a multiple of downsample {downsample}")
    rng = np.random.default_rng(seed)
    scale = resolution / 64
    sims = []
    for _ in range(num_simulations):
        d = {k: float(rng.uniform(*r)) for k, r in PARAM_RANGES.items()}
        for k in ("inflow_x", "inflow_y", "inflow_radius"):
            d[k] *= resolution
        for k in ("inflow_vx", "inflow_vy", "buoyancy"):
            d[k] *= scale
        sims.append(d)
    return {"data": "smoke", "version": _VERSION, "num_simulations": int(num_simulations),
            "num_frames": int(num_frames), "resolution": int(resolution),
            "downsample": int(downsample), "seed": seed, "inflow_rate": INFLOW_RATE,
            "solve_tolerance": SOLVE_TOLERANCE, "advection": "mac_cormack", "simulations": sims}


def downsample_frames(high, factor=4):
    """Average pooling over ``factor × factor`` blocks of the last two axes."""
    high = np.asarray(high)
    *lead, h, w = high.shape
    if h % factor or w % factor:
        raise ValueError(f"frame size {h}x{w} is not a multiple of {factor}")
    return high.reshape(*lead, h // factor, factor, w // factor, factor).mean(
        axis=(-3, -1)).astype(high.dtype)


def _simulate_one(sim, num_frames, n, progress):
    import warnings

    flow = import_extra("phi.flow", "simulating smoke plumes")  # slow import

    bounds = flow.Box(x=n, y=n)
    smoke = flow.CenteredGrid(0, flow.ZERO_GRADIENT, x=n, y=n, bounds=bounds)
    velocity = flow.StaggeredGrid(0, 0, x=n, y=n, bounds=bounds)
    disc = flow.Sphere(x=sim["inflow_x"], y=sim["inflow_y"], radius=sim["inflow_radius"])
    mask = flow.resample(disc, to=smoke, soft=True)
    vmask = flow.resample(disc, to=velocity, soft=True)
    v_in = flow.vec(x=sim["inflow_vx"], y=sim["inflow_vy"])
    pressure = None
    frames = np.empty((num_frames, n, n), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # phiflow's rank-deficiency / sparse-format notices
        for i in range(num_frames):
            smoke = flow.advect.mac_cormack(smoke, velocity, dt=1) + INFLOW_RATE * mask
            force = flow.resample(smoke * (0, sim["buoyancy"]), to=velocity)
            velocity = flow.advect.semi_lagrangian(velocity, velocity, dt=1) + force
            velocity = velocity * (1 - vmask) + vmask * v_in
            velocity, pressure = flow.fluid.make_incompressible(
                velocity, (), flow.Solve("auto", SOLVE_TOLERANCE, SOLVE_TOLERANCE, x0=pressure))
            frames[i] = smoke.values.numpy("y,x")[::-1]
            progress.update(1)
    return np.maximum(frames, 0)


def simulate_smoke(params, progress=True):
    """Runs the simulations described by ``smoke_parameters(...)``.

    Returns:
        dict: ``high`` float32 ``(S, F, n, n)``, ``low`` float32
        ``(S, F, n/d, n/d)``, ``seconds`` float (wall time).
    """
    s, f, n = params["num_simulations"], params["num_frames"], params["resolution"]
    start = time.perf_counter()
    high = np.empty((s, f, n, n), np.float32)
    with cache_lib.Progress(s * f, f"simulating {s} smoke plumes ({n}x{n}, {f} frames)",
                            enabled=progress) as bar:
        for i, sim in enumerate(params["simulations"]):
            high[i] = _simulate_one(sim, f, n, bar)
    return {"high": high, "low": downsample_frames(high, params["downsample"]),
            "seconds": time.perf_counter() - start}


def load_smoke_arrays(num_simulations=20, num_frames=120, resolution=64, downsample=4, seed=0,
                      cache_dir=None, progress=True):
    """Smoke plume frames, from the cache or simulated (then cached).

    Args:
        num_simulations, num_frames, resolution, downsample, seed: see the
            module docstring (paper: 20 × 120, 64×64, ×4). Tests use e.g. 32×32,
            2 simulations × 5 frames (seconds).
        cache_dir: cache folder; default ``default_cache_dir()/"smoke"``.
            ``False`` disables the cache.
        progress: show a progress bar while simulating.

    Returns:
        dict: ``high`` float32 ``(S, F, n, n)``, ``low`` float32
        ``(S, F, n/downsample, n/downsample)``, ``params`` (the dict that
        ``smoke_parameters`` returns), ``cached`` (bool: read from the cache),
        ``path`` (the cache file or None), ``seconds`` (simulation time, or the
        cached run's).

    Example:
        >>> from keras_reversible.data import load_smoke_arrays
        >>> d = load_smoke_arrays(2, 5, resolution=32, cache_dir=False, progress=False)
        >>> d["high"].shape, d["low"].shape
        ((2, 5, 32, 32), (2, 5, 8, 8))
    """
    params = smoke_parameters(num_simulations, num_frames, resolution, downsample, seed)
    folder = None
    if cache_dir is not False:
        folder = pathlib.Path(cache_dir) if cache_dir is not None else (
            cache_lib.default_cache_dir() / "smoke")
        stem = f"smoke_{cache_lib.params_digest(params)}"
        hit = cache_lib.load_cache(folder, stem, params)
        if hit is not None:
            return {"high": hit["high"], "low": hit["low"], "params": params, "cached": True,
                    "path": folder / f"{stem}.npz", "seconds": float(hit["seconds"])}
    out = simulate_smoke(params, progress=progress)
    path = None
    if folder is not None:
        path = cache_lib.save_cache(folder, stem, params, {
            "high": out["high"], "low": out["low"], "seconds": np.float64(out["seconds"])})
    return {**out, "params": params, "cached": False, "path": path}


def split_simulations(num_simulations, train_fraction=0.1):
    """Indices of the training and test simulations: the first ``round(f·S)`` (at
    least 1) train, the rest test (at least 1 when S > 1)."""
    n_train = max(1, int(round(train_fraction * num_simulations)))
    if num_simulations > 1:
        n_train = min(n_train, num_simulations - 1)
    return np.arange(n_train), np.arange(n_train, num_simulations)


def _augment_pair(low, high, seed):
    """Same random rotation by k·90° and left-right / up-down flips on both images
    (stateless ops; ``seed`` a shape-[2] integer tensor)."""
    r = tf.random.stateless_uniform([3], seed=tf.cast(seed, tf.int64), minval=0, maxval=4,
                                    dtype=tf.int32)
    k = r[0]
    low, high = tf.image.rot90(low, k), tf.image.rot90(high, k)
    flip_lr, flip_ud = r[1] % 2 == 1, r[2] % 2 == 1
    low = tf.cond(flip_lr, lambda: tf.image.flip_left_right(low), lambda: low)
    high = tf.cond(flip_lr, lambda: tf.image.flip_left_right(high), lambda: high)
    low = tf.cond(flip_ud, lambda: tf.image.flip_up_down(low), lambda: low)
    high = tf.cond(flip_ud, lambda: tf.image.flip_up_down(high), lambda: high)
    return low, high


def smoke_dataset(split="train", batch_size=16, train_fraction=0.1, augment=None, shuffle=None,
                  seed=0, drop_remainder=False, cache_dir=None, progress=True, simulation_seed=0,
                  **sim_params):
    """Smoke frames as a batched, prefetched ``tf.data.Dataset`` of ``(low, high)``.

    Args:
        split: ``"train"`` (the first ``train_fraction`` of the simulations;
            paper: 10%) or ``"test"`` (the others), split by simulation so no
            plume is in both.
        batch_size, shuffle, drop_remainder: as elsewhere (shuffle
            defaults to ``split == "train"``).
        seed: seeds the shuffle and the augmentation (the first pass is
            repeatable; later passes draw new rotations and flips).
        simulation_seed: the ``seed`` of ``load_smoke_arrays`` (which plumes).
        augment: random rotation by a multiple of 90° and random flips, the same
            on ``low`` and ``high``; default ``split == "train"``.
        cache_dir, progress, **sim_params: passed to ``load_smoke_arrays``
            (``num_simulations``, ``num_frames``, ``resolution``, ``downsample``).

    Returns:
        tf.data.Dataset: ``x`` = low-res float32 ``(B, n/4, n/4, 1)``, ``y`` =
        high-res float32 ``(B, n, n, 1)``; smoke density (>= 0, not rescaled).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    d = load_smoke_arrays(seed=simulation_seed, cache_dir=cache_dir, progress=progress,
                          **sim_params)
    train_idx, test_idx = split_simulations(d["high"].shape[0], train_fraction)
    idx = train_idx if split == "train" else test_idx
    high = d["high"][idx].reshape(-1, *d["high"].shape[2:], 1)
    low = d["low"][idx].reshape(-1, *d["low"].shape[2:], 1)
    shuffle = split == "train" if shuffle is None else shuffle
    augment = split == "train" if augment is None else augment
    ds = tf.data.Dataset.from_tensor_slices((low, high))
    if shuffle:
        ds = ds.shuffle(max(len(low), 1), seed=seed, reshuffle_each_iteration=True)
    if augment:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, seeds)).map(
            lambda pair, s: _augment_pair(pair[0], pair[1], s), num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return ds.prefetch(tf.data.AUTOTUNE)
