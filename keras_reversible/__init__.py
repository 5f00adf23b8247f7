"""keras-reversible: a tied reverse pass for any functional Keras model.

Trains networks with the reconstruction losses of RN/RNL (reversible network
learning) and racecar training. See ``ReversibleModel`` and
``make_reversible``.
"""

from keras_reversible import callbacks, information, losses, registry, regularizers, rules, terms
from keras_reversible.config import ReversalConfig
from keras_reversible.losses import LatentGeneration
from keras_reversible.model import ReversibleModel, make_reversible
from keras_reversible.program import ReverseProgram
from keras_reversible.regularizers import SRIP
from keras_reversible.registry import UnsupportedLayerError, register_reverse_rule

__version__ = "0.1.0"

__all__ = [
    "LatentGeneration",
    "callbacks",
    "information",
    "ReversalConfig",
    "ReverseProgram",
    "ReversibleModel",
    "SRIP",
    "UnsupportedLayerError",
    "losses",
    "make_reversible",
    "register_reverse_rule",
    "registry",
    "regularizers",
    "rules",
    "terms",
]
