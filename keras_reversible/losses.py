"""The reversal loss terms: racecar reconstruction and RNL latent generation.

Racecar loss (racecar paper, eq. 1)::

    L_racecar = Σ_{m=1..s} λ_m · D(L_m, L'_m)

with ``D`` chosen by ``reduction``:

* ``"l2_loss"``: ``tf.nn.l2_loss(L'_m − L_m)``, half the sum of squares over
  the batch and every element, as the official racecar code adds it. The
  papers' λ values (1e-2 MI, 1e-5 MNIST, 1e-7 CIFAR, 1e-10 VGG19, 0.1 smoke)
  assume this reduction.
* ``"mean"``: the mean of squares over the batch and every element. Its
  scale does not depend on batch or layer size, which makes ``λ = 1`` a
  sensible start for a new model.

``s = 1`` with the reverse pass starting at the network output is the RN
reconstruction loss (RN paper, eq. 6), up to the factor ½ of ``l2_loss``.
"""

import dataclasses

import tensorflow as tf

REDUCTIONS = ("mean", "l2_loss")


def reconstruction_error(forward, reverse, reduction):
    """``D(L_m, L'_m)`` in float32, over the local batch.

    Args:
        forward: ``L_m``.
        reverse: ``L'_m``, same shape.
        reduction: ``"mean"`` or ``"l2_loss"``.

    Returns:
        A float32 scalar.
    """
    diff = tf.cast(reverse, tf.float32) - tf.cast(forward, tf.float32)
    if reduction == "l2_loss":
        return tf.nn.l2_loss(diff)
    return tf.reduce_mean(tf.square(diff))


@dataclasses.dataclass(frozen=True)
class LatentGeneration:
    """Settings of RNL latent feature generation (RN paper, eq. 8, alg. 1).

    The reading implemented (the paper leaves these open):

    1. ``o`` is the network output (after its activation, e.g. softmax), taken
       as data: ``tf.stop_gradient(o)``.
    2. ``tr(o)``: for each sample, ``num_entries`` entries other than the
       arg-max are picked uniformly at random and set to
       ``closeness · max(o)``; the other entries are kept.
    3. ``α̂ = range_ops(Wᵀ(tr(o) − b))``: one step back through the last
       weight layer with tied weights, then the range ops of that layer's
       input (racecar's form of RN eq. 4; RN writes ``γ(tr(o)·Wᵀ + b_{t−1})``).
    4. ``ô``: the last weight layer and the layers after it, run forward on
       ``α̂``.
    5. ``latent_loss = weight · task_loss(y_true, ô)``, the compiled loss with
       the true labels. Gradients reach ``W`` through both its uses.

    Attributes:
        weight: multiplier of the latent loss; 0 switches it off.
        num_entries: how many entries of ``o`` are raised, per sample.
        closeness: raised entries become ``closeness · max(o)`` (0 < c ≤ 1).
        seed: seed of the entry choice (combined with the step counter, so
            it needs no state of its own).
    """

    weight: float = 1.0
    num_entries: int = 1
    closeness: float = 0.9
    seed: int = 1337

    @classmethod
    def parse(cls, value):
        """None/False (off), True (defaults), a dict or a LatentGeneration."""
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if isinstance(value, cls):
            config = dataclasses.asdict(value)
        elif isinstance(value, dict):
            unknown = set(value) - {f.name for f in dataclasses.fields(cls)}
            if unknown:
                raise ValueError(
                    f"latent_generation: unknown keys {sorted(unknown)}; "
                    f"allowed: {[f.name for f in dataclasses.fields(cls)]}."
                )
            config = dict(value)
        else:
            raise TypeError(
                "latent_generation must be None, a bool, a dict or "
                f"LatentGeneration, got {type(value).__name__}: {value!r}."
            )
        lg = cls(**config)
        if not (isinstance(lg.weight, (int, float)) and lg.weight >= 0):
            raise ValueError(f"latent_generation['weight'] must be >= 0, got {lg.weight!r}.")
        if not (isinstance(lg.num_entries, int) and lg.num_entries >= 1):
            raise ValueError(
                f"latent_generation['num_entries'] must be an int >= 1, got {lg.num_entries!r}."
            )
        if not (0 < lg.closeness <= 1):
            raise ValueError(
                f"latent_generation['closeness'] must be in (0, 1], got {lg.closeness!r}."
            )
        return lg


def transform_output(o, num_entries, closeness, seed, replica=0, num_replicas=1):
    """``tr(o)`` of RN eq. 8: raise random non-max entries close to the max.

    Args:
        o: ``(batch, classes)`` outputs.
        num_entries: entries raised per sample (capped at ``classes − 1``).
        closeness: the raised value is ``closeness · max(o)``.
        seed: a stateless seed, shape ``(2,)``.
        replica, num_replicas: under ``tf.distribute``, this replica's index
            and the replica count. The draw is made for the whole global
            batch and this replica takes its rows, so that the replicas pick
            what one device would pick for the same global batch.

    Returns:
        ``tr(o)``, same shape and dtype as ``o``.
    """
    classes = o.shape[-1]
    k = min(num_entries, classes - 1)
    rows = tf.shape(o)[0]
    scores = tf.random.stateless_uniform(
        [num_replicas * rows, tf.shape(o)[1]], seed=seed, dtype=tf.float32
    )[replica * rows:(replica + 1) * rows]
    is_max = tf.one_hot(tf.argmax(o, axis=-1), classes, dtype=tf.float32)
    scores = scores - 2.0 * is_max  # the arg-max is never picked
    _, picked = tf.math.top_k(scores, k=k)
    mask = tf.reduce_max(tf.one_hot(picked, classes, dtype=o.dtype), axis=-2)
    high = closeness * tf.reduce_max(o, axis=-1, keepdims=True)
    return mask * high + (1 - mask) * o
