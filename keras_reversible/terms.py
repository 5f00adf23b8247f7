"""The loss terms a ``ReversibleModel`` adds to its compiled task loss.

Each term is an object that computes its weighted value from what one step
computed (``StepData``) and names the metric it is reported as::

    loss = task_loss + racecar_loss + latent_loss + ortho_loss + regularization_loss

A term returns None when there is nothing to compute (a weight of 0, no
regularised variable): it costs nothing and its metric reports 0.

Under ``tf.distribute`` every term returns this replica's share of the
global value, so that the replicas' sum is the single-device value for the
same global batch (DESIGN §2).
"""

import dataclasses
from typing import Any, Callable

import keras
import tensorflow as tf

from keras_reversible import losses
from keras_reversible.regularizers import SRIP


def num_replicas():
    """Replicas in sync under the current ``tf.distribute`` strategy (1 without)."""
    return tf.distribute.get_strategy().num_replicas_in_sync


@dataclasses.dataclass(frozen=True)
class StepData:
    """What a train or test step hands to each loss term.

    Attributes:
        y, y_pred, sample_weight: the labels, the model output and the weights.
        taps: the forward taps (``ReverseProgram.forward``).
        training: training mode.
        task_loss: the compiled loss, ``task_loss(y, y_pred, sample_weight)``.
        optimizer: the model's optimizer (its step seeds the latent draw), or None.
        variables: the model's trainable variables.
        layer_losses: the layers' own losses of this forward pass (activity
            regularisers), float32.
    """

    y: Any
    y_pred: Any
    sample_weight: Any
    taps: dict
    training: bool
    task_loss: Callable
    optimizer: Any
    variables: list
    layer_losses: list


class RacecarTerm:
    """``Σ_{m≤s} λ_m D(L_m, L'_m)`` (racecar eq. 1), reported as ``racecar_loss``.

    Args:
        program: the model's ``ReverseProgram``.
        lambdas: ``λ_1 … λ_s``.
        reduction: ``D``: ``"mean"`` or ``"l2_loss"`` (``losses``).
    """

    name = "racecar_loss"

    def __init__(self, program, lambdas, reduction):
        self.program = program
        self.lambdas = list(lambdas)
        self.reduction = reduction

    @property
    def enabled(self):
        """Whether the term is computed (a depth above 0 and a λ above 0)."""
        return any(self.lambdas)

    def reports(self, variables):
        """The term is always reported (0 when disabled)."""
        return True

    def value(self, taps, training):
        """The term from the forward taps, or None when disabled."""
        if not self.enabled:
            return None
        back = self.program.reverse(taps, training)
        total = tf.constant(0.0)
        for k, lam in zip(self.program.constrained, self.lambdas):
            if lam:
                total += lam * losses.reconstruction_error(taps[k], back[k], self.reduction)
        if self.reduction == "mean":  # l2_loss sums over the batch: the replicas' sum is global
            total /= num_replicas()
        return total

    def __call__(self, data):
        return self.value(data.taps, data.training)


class LatentTerm:
    """RNL latent feature generation (RN eq. 8), reported as ``latent_loss``.

    ``weight · task_loss(y, ô)``, ``ô`` the last layer run on the latent
    feature generated from ``tr(o)`` (``losses.LatentGeneration``).

    Args:
        program: the model's ``ReverseProgram``.
        settings: a ``losses.LatentGeneration`` with a weight above 0.
        outputs_struct: the model outputs' structure (``ô`` is packed in it).
    """

    name = "latent_loss"

    def __init__(self, program, settings, outputs_struct):
        self.program = program
        self.settings = settings
        self.outputs_struct = outputs_struct
        program.latent_head  # raises now, at build time, for an unsuitable model

    def reports(self, variables):
        return True

    def __call__(self, data):
        # make_reversible passes `model.outputs`, a list: y_pred is then [o].
        o = tf.stop_gradient(tf.cast(keras.tree.flatten(data.y_pred)[0], tf.float32))
        step = tf.cast(data.optimizer.iterations, tf.int32) if data.optimizer else 0
        context = tf.distribute.get_replica_context()
        replica = context.replica_id_in_sync_group if context else 0
        _, _, o_hat = self.program.generate_latent(
            o, self.settings, step, data.training, replica, num_replicas())
        o_hat = keras.tree.pack_sequence_as(self.outputs_struct, [o_hat])
        return tf.cast(self.settings.weight * data.task_loss(data.y, o_hat, data.sample_weight),
                       tf.float32)


def is_orthogonality(variable):
    """Whether ``variable``'s regulariser is the ``Ort`` baseline's (``SRIP``)."""
    return isinstance(variable.regularizer, SRIP)


class RegularizationTerm:
    """The weight regularisers of some trainable variables, summed.

    Args:
        name: the metric.
        select: ``select(variable)``: whether this term holds a regularised
            variable.
        layer_losses: also add the layers' own losses (activity regularisers).
    """

    def __init__(self, name, select, layer_losses):
        self.name = name
        self.select = select
        self.layer_losses = layer_losses

    def variables(self, variables):
        """The regularised variables of ``variables`` this term holds."""
        return [v for v in variables
                if getattr(v, "regularizer", None) is not None and self.select(v)]

    def reports(self, variables):
        """Reported when the model has such a variable when it is built."""
        return bool(self.variables(variables))

    def __call__(self, data):
        values = [tf.cast(v.regularizer(v), tf.float32) for v in self.variables(data.variables)]
        if self.layer_losses:
            values.extend(data.layer_losses)
        return tf.add_n(values) * (1.0 / num_replicas()) if values else None


def regularization_terms():
    """``ortho_loss`` (SRIP, racecar eq. 2) and ``regularization_loss`` (the rest)."""
    return [
        RegularizationTerm("ortho_loss", is_orthogonality, layer_losses=False),
        RegularizationTerm("regularization_loss", lambda v: not is_orthogonality(v),
                           layer_losses=True),
    ]
