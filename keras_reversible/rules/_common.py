"""Helpers shared by the rule modules."""

import tensorflow as tf


def like(variable, tensor):
    """A layer variable as a tensor of ``tensor``'s dtype."""
    return tf.cast(tf.convert_to_tensor(variable), tensor.dtype)


def minus_bias(layer, y):
    """``y − b`` for a layer with a bias, else ``y``."""
    if getattr(layer, "use_bias", False) and getattr(layer, "bias", None) is not None:
        return y - like(layer.bias, y)
    return y


def check_channels_last(layer):
    """Raises ValueError unless ``layer`` uses ``data_format="channels_last"``."""
    fmt = getattr(layer, "data_format", "channels_last")
    if fmt != "channels_last":
        raise ValueError(
            f"Layer '{layer.name}' uses data_format={fmt!r}; the reverse "
            "pass supports channels_last only."
        )
