"""SRIP orthogonality regulariser (Bansal et al. 2018; racecar paper eq. 2)."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="keras_reversible")
class SRIP(keras.regularizers.Regularizer):
    """Spectral restricted isometry penalty ``β · σ(WᵀW − I)``.

    ``W`` is the kernel reshaped to ``(fan_in, units)``; the smaller of the
    two Gram matrices ``WᵀW`` / ``WWᵀ`` is used, as in Bansal et al. ``σ``
    (the spectral norm of the symmetric ``G − I``) is estimated by
    ``power_iterations`` steps of the power method from a fixed
    pseudo-random start vector, differentiably, so no state is kept.

    The racecar paper's ``Ort`` baseline uses this as a kernel regulariser on
    every weight layer; ``ReversibleModel`` reports it as ``ortho_loss``.

    Args:
        beta: the coefficient ``β``.
        power_iterations: power-method steps (Bansal et al. use 2).
        seed: seed of the start vector.

    Example:

    ```python
    layer = keras.layers.Dense(8, kernel_regularizer=kr.regularizers.SRIP(1e-4))
    ```

    References:
        Bansal, Chen & Wang, "Can we gain more from orthogonality
        regularizations in training deep CNNs?", NeurIPS 2018.
    """

    def __init__(self, beta=1e-4, power_iterations=2, seed=0):
        if beta < 0:
            raise ValueError(f"SRIP: beta must be >= 0, got {beta!r}.")
        if int(power_iterations) < 1:
            raise ValueError(
                f"SRIP: power_iterations must be >= 1, got {power_iterations!r}."
            )
        self.beta = float(beta)
        self.power_iterations = int(power_iterations)
        self.seed = int(seed)

    def spectral_norm(self, kernel):
        """The power-method estimate of ``σ(WᵀW − I)``."""
        w = tf.cast(tf.reshape(kernel, [-1, kernel.shape[-1]]), tf.float32)
        if w.shape[0] < w.shape[1]:
            w = tf.transpose(w)
        n = w.shape[1]
        gram = tf.matmul(w, w, transpose_a=True) - tf.eye(n)
        v = tf.random.stateless_normal([n, 1], seed=[self.seed, 0])
        for _ in range(self.power_iterations):
            v = tf.matmul(gram, v)
            v = v / (tf.norm(v) + 1e-12)
        return tf.norm(tf.matmul(gram, v))

    def __call__(self, kernel):
        return self.beta * self.spectral_norm(kernel)

    def get_config(self):
        return {"beta": self.beta, "power_iterations": self.power_iterations, "seed": self.seed}
