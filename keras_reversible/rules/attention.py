"""Transformer layers (DESIGN §7): EinsumDense, Embedding, MultiHeadAttention.

* ``EinsumDense`` ``y = einsum(eq, x, K) + b`` is a weight layer: the exact
  transpose ``einsum(eqᵀ, y − b, K)`` (the equation read backwards).
* ``Embedding`` is a weight layer whose reverse is ``Eᵀ y'``: scores over the
  vocabulary, as keras-hub's ``ReversibleEmbedding`` with tied weights. Its
  integer ids are not a constrained point; the signal stops there.
* ``MultiHeadAttention(query, value, key)``: the attention weights
  ``A = softmax(QKᵀ/√d)`` of the forward pass are data (like a gate); the
  value path ``y = concat_h(A_h (value W_v,h + b_v,h)) W_o + b_o`` is affine in
  ``value``, so the reverse is ``value' = W_vᵀ(A_hᵀ(W_oᵀ(y' − b_o))_h − b_v)``.
  ``query`` and ``key`` get no reverse signal (in self-attention all three are
  one tensor, which gets ``value'``).
"""

import inspect

import keras
import tensorflow as tf

from keras_reversible import registry
from keras_reversible.rules._common import like

L = keras.layers


def _einsum_transpose(layer, y):
    """``Kᵀ(y − b)`` of an EinsumDense layer: its equation with input and output swapped."""
    if layer.bias is not None:
        y = y - like(layer.bias, y)
    inputs, output = layer.equation.split("->")
    x_subscripts, kernel_subscripts = inputs.split(",")
    return tf.einsum(f"{output},{kernel_subscripts}->{x_subscripts}", y, like(layer.kernel, y))


@registry.transpose_rule(L.EinsumDense, kind="weight")
def _einsum_dense(layer, y, ctx):
    return _einsum_transpose(layer, y)


@registry.transpose_rule(L.Embedding, kind="weight")
def _embedding(layer, y, ctx):
    """Scores over the vocabulary, ``Eᵀ y'`` (tied weights)."""
    return tf.tensordot(y, like(layer.embeddings, y), axes=[[y.shape.rank - 1], [1]])


def _bound(layer, ctx):
    """The call's arguments by parameter name (``InputSlot`` for tensors)."""
    args, kwargs = ctx.arguments
    return inspect.signature(layer.call).bind(*args, **kwargs).arguments


def _value_input(layer, ctx):
    bound = _bound(layer, ctx)
    if len(ctx.input_shapes[bound["value"].index]) != 3 or layer.attention_axes not in (None, (1,)):
        raise ValueError(
            f"MultiHeadAttention '{layer.name}': the reverse pass supports (batch, "
            "sequence, features) inputs with attention over the sequence axis.")
    if any(bound.get(mask) is not None for mask in
           ("query_mask", "value_mask", "key_mask", "attention_mask")):
        raise ValueError(
            f"MultiHeadAttention '{layer.name}' is called with a mask; the reverse pass "
            "supports use_causal_mask only.")
    return [bound["value"].index]


@registry.transpose_rule(L.MultiHeadAttention, kind="weight", needs_inputs=True,
                         signal_inputs=_value_input)
def _multi_head_attention(layer, y, ctx):
    bound = _bound(layer, ctx)
    slot = {name: bound[name].index for name in ("query", "value")}
    slot["key"] = bound["key"].index if bound.get("key") is not None else slot["value"]
    query, value, key = (ctx.forward_input(slot[n], y) for n in ("query", "value", "key"))
    _, scores = layer.call(query, value, key, return_attention_scores=True,
                           use_causal_mask=bool(bound.get("use_causal_mask", False)))
    scores = tf.stop_gradient(tf.cast(scores, y.dtype))  # A: data, (batch, heads, T, S)
    heads = _einsum_transpose(layer.output_dense, y)     # (batch, T, heads, dim)
    values = tf.einsum("bhts,bthd->bshd", scores, heads)
    xs = [None] * len(ctx.input_shapes)
    xs[slot["value"]] = _einsum_transpose(layer.value_dense, values)
    return xs
