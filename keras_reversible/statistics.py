"""Moving statistics of the reverse signal at reverse BatchNormalization.

The reverse pass re-applies each BatchNormalization forward at the
constrained points (racecar paper, section 3). In training it normalises the
reverse signal with that signal's batch statistics. In inference it needs
moving statistics, and the forward layer's are the wrong ones: the reverse
signal ``Aᵀ(y − b)`` has its own scale, and normalising it with the forward
activations' mean and variance compounds layer after layer (VGG-19 after 8
RN steps reconstructed with an MSE of 3e19). So each reverse BN keeps its own
``reverse_moving_mean`` / ``reverse_moving_variance``: non-trainable
variables of the ``ReversibleModel``, updated like Keras' own (exponential
average with the forward layer's ``momentum``) whenever the reverse pass runs
in training mode, saved with the model, averaged over replicas.
"""

import keras
import tensorflow as tf


class ReverseStatistics:
    """The reverse moving mean and variance of every reverse BN layer.

    Args:
        owner: the layer that owns the variables (the ``ReversibleModel``).
        layers: the BatchNormalization layers re-applied by the reverse pass.
    """

    def __init__(self, owner, layers):
        self._by_layer = {}
        for layer in layers:
            if id(layer) in self._by_layer:
                continue
            shape = tuple(layer.moving_mean.shape)
            mean = owner.add_weight(
                shape=shape, name=f"{layer.name}_reverse_moving_mean",
                initializer="zeros", trainable=False, autocast=False, aggregation="mean",
            )
            variance = owner.add_weight(
                shape=shape, name=f"{layer.name}_reverse_moving_variance",
                initializer="ones", trainable=False, autocast=False, aggregation="mean",
            )
            self._by_layer[id(layer)] = (mean, variance)
        # The weight of the old average in the next update, or None for
        # each layer's own momentum (see `calibrating`).
        self.momentum = None

    def __len__(self):
        return len(self._by_layer)

    @property
    def variables(self):
        """All the variables, mean and variance per layer."""
        return [v for pair in self._by_layer.values() for v in pair]

    def get(self, layer):
        """``(mean, variance)`` variables of ``layer``, or None."""
        return self._by_layer.get(id(layer))

    def update(self, layer, mean, variance):
        """Folds one batch's statistics into ``layer``'s moving averages.

        ``variance`` is the unbiased batch variance.
        """
        pair = self.get(layer)
        if pair is None:
            return
        momentum = layer.momentum if self.momentum is None else self.momentum
        for var, value in zip(pair, (mean, variance)):
            value = tf.stop_gradient(tf.cast(tf.reshape(value, var.shape), var.dtype))
            var.assign(var * momentum + value * (1.0 - momentum))


def bessel_corrected(variance, x, axes):
    """The unbiased variance from ``variance``, taken over ``axes`` of ``x``."""
    count = tf.cast(tf.reduce_prod(tf.gather(tf.shape(x), axes)), variance.dtype)
    return variance * count / tf.maximum(count - 1.0, 1.0)


def is_reverse_batch_norm(layer):
    """Whether the reverse pass keeps moving statistics for ``layer``."""
    return isinstance(layer, keras.layers.BatchNormalization)
