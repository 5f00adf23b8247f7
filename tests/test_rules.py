"""Dot-product identity ⟨A x, y⟩ = ⟨x, Aᵀ y⟩ for every linear reverse rule.

``DOT_PRODUCT_CASES`` holds the cases, by layer class; ``GRAPH_CASES`` those
of the rules keyed by qualified name (raw ``keras.ops`` operations, other
libraries' private layers), run through a small functional graph. A walker
over the registry fails when the package registers a linear rule (kind
"weight" or "structural") with no case that is not one of the paper choices
listed, with the reason, in ``NOT_TRANSPOSED``.
"""

import dataclasses
import functools
import importlib
import inspect
from typing import Callable

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_reversible as kr
from keras_reversible import registry

L = keras.layers
RNG = np.random.default_rng(0)


def _apply_rule(layer, input_shapes, y, inputs=None, **options):
    ctx = registry.ReverseContext(
        [(None, *s) for s in input_shapes], inputs=inputs, options=options
    )
    return registry.rule_for(layer).transpose(layer, y, ctx)


def _dot(a, b):
    return float(tf.reduce_sum(tf.cast(a, tf.float64) * tf.cast(b, tf.float64)))


def _check_dot_identity(layer, input_shapes, batch=2, **options):
    """A x = f(x) − f(0) for an affine layer, and Aᵀ y = rule(y + f(0))."""
    xs = [tf.constant(RNG.normal(size=(batch, *s)), tf.float32) for s in input_shapes]
    zeros = [tf.zeros_like(x) for x in xs]
    single = len(xs) == 1
    f = (lambda v: layer(v[0])) if single else (lambda v: layer(v))
    f0 = f(zeros)
    ax = f(xs) - f0
    y = tf.constant(RNG.normal(size=ax.shape), tf.float32)
    aty = _apply_rule(layer, input_shapes, y + f0, **options)
    aty = [aty] if single else list(aty)
    lhs = _dot(ax, y)
    rhs = sum(_dot(x, a) for x, a in zip(xs, aty))
    for x, a in zip(xs, aty):
        assert tuple(a.shape) == tuple(x.shape)
    assert rhs == pytest.approx(lhs, rel=1e-4, abs=1e-3), (lhs, rhs)


def _bias():
    return keras.initializers.RandomNormal(stddev=1.0, seed=1)


@dataclasses.dataclass(frozen=True)
class Case:
    """A dot-product case: a fresh layer, its input shapes, reversal options."""

    build: Callable
    shapes: tuple
    options: dict
    id: str


def case(build, *shapes, id="", **options):
    return Case(build, shapes, options, id or "-".join("x".join(map(str, s)) for s in shapes))


CONV2D = [
    dict(strides=s, padding=p, dilation_rate=1) for s in (1, 2) for p in ("same", "valid")
] + [dict(strides=1, padding=p, dilation_rate=2) for p in ("same", "valid")]


def _conv_id(cfg):
    return f"s{cfg['strides']}-{cfg['padding']}-d{cfg['dilation_rate']}"


# Every linear rule the package registers, by layer class: ⟨A x, y⟩ = ⟨x, Aᵀ y⟩.
DOT_PRODUCT_CASES = {
    # weights
    L.Dense: [case(lambda: L.Dense(4, bias_initializer=_bias()), shape) for shape in [(6,), (3, 6)]],
    L.Conv1D: [
        case(lambda cfg=cfg: L.Conv1D(4, 3, bias_initializer=_bias(), **cfg), (9, 3), id=_conv_id(cfg))
        for cfg in CONV2D[:4] + [dict(strides=1, padding="causal", dilation_rate=2)]
    ],
    L.Conv2D: [
        case(lambda cfg=cfg: L.Conv2D(5, 3, bias_initializer=_bias(), **cfg), (size, size + 1, 3),
             id=f"{size}-{_conv_id(cfg)}")
        for size in (7, 8) for cfg in CONV2D
    ] + [case(lambda: L.Conv2D(4, 3, groups=2, bias_initializer=_bias()), (6, 6, 4), id="groups"),
         case(lambda: L.Conv2D(4, 7, groups=4, padding="same", bias_initializer=_bias()),
              (9, 8, 4), id="depthwise"),
         case(lambda: L.Conv2D(6, 3, strides=2, groups=3, dilation_rate=1,
                               bias_initializer=_bias()), (9, 8, 3), id="depthwise-x2-s2"),
         case(lambda: L.Conv2D(4, 3, groups=4, padding="same", dilation_rate=2,
                               bias_initializer=_bias()), (9, 8, 4), id="depthwise-d2")],
    L.Conv3D: [
        case(lambda s=s, p=p: L.Conv3D(2, 3, strides=s, padding=p, bias_initializer=_bias()),
             (5, 6, 7, 2), id=f"s{s}-{p}")
        for s, p in [(1, "same"), (2, "valid"), (2, "same")]
    ],
    L.Conv1DTranspose: [
        case(lambda: L.Conv1DTranspose(3, 3, strides=2, bias_initializer=_bias()), (7, 2)),
    ],
    L.Conv2DTranspose: [
        case(lambda s=s, p=p, o=o: L.Conv2DTranspose(3, 3, strides=s, padding=p, output_padding=o,
                                                     bias_initializer=_bias()),
             (5, 6, 2), id=f"s{s}-{p}-o{o}")
        for s, p, o in [(1, "same", None), (2, "same", None), (2, "valid", None), (2, "valid", 1)]
    ],
    L.Conv3DTranspose: [
        case(lambda s=s, p=p: L.Conv3DTranspose(2, 3, strides=s, padding=p, bias_initializer=_bias()),
             (3, 4, 5, 2), id=f"s{s}-{p}")
        for s, p in [(1, "same"), (2, "valid")]
    ],
    L.DepthwiseConv1D: [case(lambda: L.DepthwiseConv1D(3, bias_initializer=_bias()), (9, 3))],
    L.DepthwiseConv2D: [
        case(lambda s=s, p=p: L.DepthwiseConv2D(3, strides=s, padding=p, depth_multiplier=2,
                                                bias_initializer=_bias()),
             (7, 8, 3), id=f"s{s}-{p}")
        for s, p in [(1, "same"), (2, "same"), (2, "valid")]
    ],
    L.SeparableConv1D: [case(lambda: L.SeparableConv1D(4, 3, bias_initializer=_bias()), (9, 3))],
    L.SeparableConv2D: [
        case(lambda s=s, p=p: L.SeparableConv2D(4, 3, strides=s, padding=p, bias_initializer=_bias()),
             (7, 7, 3), id=f"s{s}-{p}")
        for s, p in [(1, "same"), (2, "valid")]
    ],
    L.EinsumDense: [
        case(lambda: L.EinsumDense("ab,bc->ac", output_shape=4, bias_axes="c",
                                   bias_initializer=_bias()), (6,)),
        case(lambda: L.EinsumDense("abc,cde->abde", output_shape=(None, 2, 3), bias_axes="de",
                                   bias_initializer=_bias()), (5, 4), id="heads"),
    ],
    # pooling
    L.AveragePooling1D: [case(lambda: L.AveragePooling1D(2, padding="same"), (7, 3))],
    L.AveragePooling2D: [
        case(lambda: L.AveragePooling2D(2), (8, 7, 3)),
        case(lambda: L.AveragePooling2D(3, strides=2, padding="same"), (7, 8, 3)),
    ],
    L.AveragePooling3D: [case(lambda: L.AveragePooling3D(2), (4, 4, 5, 2))],
    L.GlobalAveragePooling1D: [case(lambda: L.GlobalAveragePooling1D(), (5, 3))],
    L.GlobalAveragePooling2D: [
        case(lambda: L.GlobalAveragePooling2D(), (5, 6, 3)),
        case(lambda: L.GlobalAveragePooling2D(keepdims=True), (5, 6, 3), id="keepdims"),
    ],
    L.GlobalAveragePooling3D: [case(lambda: L.GlobalAveragePooling3D(), (3, 4, 5, 2))],
    # Not the default rule (racecar's max pooling, see NOT_TRANSPOSED): the exact option.
    L.UpSampling1D: [case(lambda: L.UpSampling1D(2), (5, 2), upsample_reverse="transpose")],
    L.UpSampling2D: [
        case(lambda i=i: L.UpSampling2D(2, interpolation=i), (3, 4, 2), id=i,
             upsample_reverse="transpose")
        for i in ("nearest", "bilinear")
    ],
    L.UpSampling3D: [case(lambda: L.UpSampling3D(2), (2, 3, 2, 1), upsample_reverse="transpose")],
    # shape
    L.ZeroPadding1D: [case(lambda: L.ZeroPadding1D(2), (4, 2))],
    L.ZeroPadding2D: [case(lambda: L.ZeroPadding2D(((1, 2), (0, 3))), (4, 5, 2))],
    L.ZeroPadding3D: [case(lambda: L.ZeroPadding3D(1), (3, 3, 3, 1))],
    L.Cropping1D: [case(lambda: L.Cropping1D((1, 2)), (6, 2))],
    L.Cropping2D: [case(lambda: L.Cropping2D(((1, 0), (2, 1))), (6, 7, 2))],
    L.Cropping3D: [case(lambda: L.Cropping3D(1), (4, 4, 4, 1))],
    L.Flatten: [case(lambda: L.Flatten(), (3, 4, 2))],
    L.Reshape: [case(lambda: L.Reshape((6, 4)), (3, 4, 2))],
    L.Permute: [case(lambda: L.Permute((2, 1, 3)), (3, 4, 2))],
    # merge
    L.Add: [
        case(lambda: L.Add(), (4, 3), (4, 3)),
        case(lambda: L.Add(), (4, 3), (4, 3), (4, 3)),
        case(lambda: L.Add(), (4, 3), (1, 3)),  # broadcasting: the VJP fallback
    ],
    L.Subtract: [case(lambda: L.Subtract(), (4, 3), (4, 3))],
    L.Average: [case(lambda: L.Average(), (4, 3), (4, 3))],
    L.Concatenate: [
        case(lambda: L.Concatenate(), (4, 3), (4, 5)),
        case(lambda: L.Concatenate(axis=1), (2, 3), (4, 3), id="axis1"),
    ],
}

# Linear-kind rules that are deliberately not the transpose (DESIGN §1), with the reason.
_UP = ("the papers' UP (nearest up-sampling by the strides; a broadcast for global pooling): "
       "max pooling is not linear, so it has no transpose; the 'unpool' option, J(x)ᵀ, is "
       "checked at x by test_max_pooling_unpool_is_exact_transpose_at_x")
_MP = ("racecar table 13: max pooling, which is not up-sampling's transpose; the exact "
       "upsample_reverse='transpose' option has its cases in DOT_PRODUCT_CASES")
_INVERSE = ("invertible preprocessing is inverted, not transposed, so the reconstruction "
            "returns to the raw input's range (test_rescaling_and_normalization_are_inverted)")
NOT_TRANSPOSED = {
    L.MaxPooling1D: _UP, L.MaxPooling2D: _UP, L.MaxPooling3D: _UP,
    L.GlobalMaxPooling1D: _UP, L.GlobalMaxPooling2D: _UP, L.GlobalMaxPooling3D: _UP,
    L.UpSampling1D: _MP, L.UpSampling2D: _MP, L.UpSampling3D: _MP,
    L.Rescaling: _INVERSE, L.Normalization: _INVERSE,
    L.Embedding: ("its input is integer ids, not a vector space: Eᵀ y is the transpose of the "
                  "one-hot lookup, checked by test_embedding_reverse_is_the_one_hot_transpose"),
}


@pytest.mark.parametrize(
    "cls,dot_case",
    [(cls, c) for cls, cases in DOT_PRODUCT_CASES.items() for c in cases],
    ids=lambda v: v.__name__ if isinstance(v, type) else v.id,
)
def test_dot_product_identity(cls, dot_case):
    layer = dot_case.build()
    assert type(layer) is cls
    _check_dot_identity(layer, list(dot_case.shapes), **dot_case.options)


# Rules keyed by qualified name, and gates: checked through a functional graph.


@dataclasses.dataclass(frozen=True)
class GraphCase:
    """``build(*inputs)`` on inputs of ``shapes``; inputs in ``fixed`` are held (gates)."""

    build: Callable
    shapes: tuple
    id: str
    fixed: tuple = ()


def _private_class(name):
    """A class of another library by qualified name (the package never imports these)."""
    module, _, cls = name.rpartition(".")
    return getattr(importlib.import_module(module), cls)


NP = "keras.src.ops.numpy."
OPS = keras.ops
GRAPH_CASES = {
    NP + "Add": [GraphCase(lambda x: x + 3.0, [(4, 3)], "bias"),
                 GraphCase(lambda x: 2.0 + x, [(4, 3)], "bias-left"),
                 GraphCase(lambda a, b: a + b, [(4, 3), (4, 3)], "two"),
                 GraphCase(lambda a, b: a + b, [(4, 3), (1, 3)], "broadcast")],
    NP + "Subtract": [GraphCase(lambda x: x - 1.5, [(4, 3)], "bias"),
                      GraphCase(lambda x: 2.0 - x, [(4, 3)], "negated"),
                      GraphCase(lambda a, b: a - b, [(4, 3), (4, 3)], "two")],
    NP + "Negative": [GraphCase(lambda x: -x, [(4, 3)], "neg")],
    NP + "Reshape": [GraphCase(lambda x: OPS.reshape(x, (-1, 4, 6)), [(3, 4, 2)], "reshape")],
    NP + "Squeeze": [GraphCase(lambda x: OPS.squeeze(x, axis=2), [(3, 1, 2)], "squeeze")],
    NP + "ExpandDims": [GraphCase(lambda x: OPS.expand_dims(x, 1), [(3, 2)], "expand")],
    NP + "Pad": [GraphCase(lambda x: OPS.pad(x, [[0, 0], [1, 2], [0, 1]]), [(4, 3)], "pad")],
    NP + "Transpose": [GraphCase(lambda x: OPS.transpose(x, (0, 2, 1, 3)), [(3, 4, 2)], "perm")],
    NP + "Moveaxis": [GraphCase(lambda x: OPS.moveaxis(x, 1, 3), [(3, 4, 2)], "move")],
    NP + "Swapaxes": [GraphCase(lambda x: OPS.swapaxes(x, 1, 2), [(3, 4, 2)], "swap")],
    NP + "Concatenate": [GraphCase(lambda a, b: OPS.concatenate([a, b], axis=-1),
                                   [(4, 3), (4, 5)], "concat")],
    # Every output of a split on the path (reordered), and one off it (zeros).
    NP + "Split": [GraphCase(lambda x: OPS.concatenate(OPS.split(x, [1, 3], axis=-1)[::-1], -1),
                             [(4, 5)], "all"),
                   GraphCase(lambda x: OPS.split(x, 2, axis=1)[1], [(4, 3)], "one")],
    NP + "Stack": [GraphCase(lambda a, b: OPS.stack([a, b], axis=1), [(4, 3), (4, 3)], "stack")],
    NP + "Hstack": [GraphCase(lambda a, b: OPS.hstack([a, b]), [(4, 3), (2, 3)], "hstack")],
    "keras.src.ops.core.Unstack": [
        GraphCase(lambda x: OPS.stack(OPS.unstack(x, axis=1)[::-1], axis=1), [(3, 2)], "all"),
        GraphCase(lambda x: OPS.unstack(x, axis=2)[0], [(3, 2)], "one")],
    NP + "Mean": [GraphCase(lambda x: OPS.mean(x, axis=(1, 2)), [(3, 4, 2)], "mean"),
                  GraphCase(lambda x: OPS.mean(x, axis=-1, keepdims=True), [(3, 4)], "keepdims")],
    NP + "Sum": [GraphCase(lambda x: OPS.sum(x, axis=-1), [(3, 4)], "sum")],
    NP + "GetItem": [GraphCase(lambda x: x[:, 1:3], [(5, 2)], "slice"),
                     GraphCase(lambda x: x[:, ::2, 0], [(5, 2)], "stride")],
    NP + "Tile": [GraphCase(lambda x: OPS.tile(x, (1, 2, 1)), [(3, 2)], "tile")],
    NP + "Repeat": [GraphCase(lambda x: OPS.repeat(x, 2, axis=1), [(3, 2)], "repeat")],
    NP + "Flip": [GraphCase(lambda x: OPS.flip(x, axis=1), [(3, 2)], "flip")],
    NP + "Roll": [GraphCase(lambda x: OPS.roll(x, 1, axis=1), [(3, 2)], "roll")],
    # Gates: the gate input held at its forward value (DESIGN §7).
    NP + "Multiply": [GraphCase(lambda x: x * 2.5, [(4, 3)], "constant"),
                      GraphCase(lambda x, g: x * g, [(4, 3), (4, 3)], "gate", fixed=(1,)),
                      GraphCase(lambda g, x: g * x, [(1, 3), (4, 3)], "se-gate", fixed=(0,))],
    L.Multiply: [GraphCase(lambda x, g: L.Multiply()([x, g]), [(4, 4, 3), (1, 1, 3)], "se-gate",
                           fixed=(1,))],
    NP + "TrueDivide": [GraphCase(lambda x: x / 4.0, [(4, 3)], "constant"),
                        GraphCase(lambda x, g: x / (OPS.abs(g) + 1.0), [(4, 3), (4, 3)], "gate",
                                  fixed=(1,))],
    NP + "Divide": [GraphCase(lambda x: OPS.divide(x, 4.0), [(4, 3)], "constant")],
    # Attention with its weights A held fixed (query and key are data), biases off: the
    # linear part of the value path.
    L.MultiHeadAttention: [GraphCase(
        lambda q, v, k: L.MultiHeadAttention(2, 3, use_bias=False)(q, v, k),
        [(4, 6), (5, 6), (5, 6)], "cross", fixed=(0, 2))],
    # keras.applications' private layers.
    "keras.src.applications.convnext.LayerScale": [GraphCase(
        lambda x: _private_class("keras.src.applications.convnext.LayerScale")(0.7, 3)(x),
        [(4, 3)], "layer-scale")],
    "keras.src.applications.inception_resnet_v2.CustomScaleLayer": [GraphCase(
        lambda a, b: _private_class(
            "keras.src.applications.inception_resnet_v2.CustomScaleLayer")(0.17)([a, b]),
        [(4, 3), (4, 3)], "scale")],
}


@pytest.mark.parametrize(
    "key,graph_case",
    [(k, c) for k, cases in GRAPH_CASES.items() for c in cases],
    ids=lambda v: v.id if isinstance(v, GraphCase) else _name(v).rsplit(".", 1)[-1],
)
def test_dot_product_identity_through_a_graph(key, graph_case):
    inputs = [keras.Input(s) for s in graph_case.shapes]
    outputs = graph_case.build(*inputs)
    model = kr.ReversibleModel(inputs, outputs)
    program = model.reverse_program
    steps = program.graph.steps
    assert any(registry.find_rule(step.layer) is registry._lookup(_resolve(key))
               for step in steps), f"no step of the graph uses the rule of {_name(key)}"
    xs = [tf.constant(RNG.normal(size=(2, *s)), tf.float32) for s in graph_case.shapes]
    held = [x if i in graph_case.fixed else tf.zeros_like(x) for i, x in enumerate(xs)]
    f0 = model(held)
    ax = model(xs) - f0
    y = tf.constant(RNG.normal(size=ax.shape), tf.float32)
    _, taps = program.forward(xs)
    back = program.reverse(taps, start=y + f0)
    signal = [i for i in range(len(xs)) if i not in graph_case.fixed]
    for i in graph_case.fixed:
        assert program.input_keys[i] not in back  # nothing into a gate
    rhs = sum(_dot(xs[i], back[program.input_keys[i]]) for i in signal)
    assert rhs == pytest.approx(_dot(ax, y), rel=1e-4, abs=1e-3)


def test_embedding_reverse_is_the_one_hot_transpose():
    ids = keras.Input((4,), dtype="int32")
    layer = L.Embedding(11, 5)
    model = kr.ReversibleModel(ids, layer(ids))
    x = np.array([[1, 2, 3, 10], [0, 0, 7, 5]], "int32")
    y = tf.constant(RNG.normal(size=(2, 4, 5)), tf.float32)
    _, taps = model.reverse_program.forward(x)
    scores = model.reverse_program.reverse(taps, start=y)[model.reverse_program.input_keys[0]]
    one_hot = tf.one_hot(x, 11)
    assert scores.shape == (2, 4, 11)
    assert _dot(one_hot, scores) == pytest.approx(_dot(layer(x), y), rel=1e-5)
    assert model.num_constrained == 0  # integer ids are not a constrained point


def _resolve(key):
    return _private_class(key) if isinstance(key, str) else key


def _defined_in(fn):
    """The module that defines ``fn`` (through wrappers); "" when unknown."""
    return getattr(inspect.unwrap(fn), "__module__", None) or ""


def _package_linear_rules():
    """The linear-kind rules that keras_reversible itself registers, by class.

    Rules that tests or a README example register (functions defined outside
    the package) are not the package's, whatever ran before in this process.
    """
    return {
        cls: rule for cls, rule in registry.registered().items()
        if rule.kind in registry.LINEAR_KINDS
        and _defined_in(rule.transpose).startswith("keras_reversible.")
    }


def _name(key):
    return key if isinstance(key, str) else key.__name__


def check_every_linear_rule_has_a_case():
    covered = {*DOT_PRODUCT_CASES, *NOT_TRANSPOSED, *GRAPH_CASES}
    missing = [_name(k) for k in _package_linear_rules() if k not in covered]
    assert not missing, (
        f"linear reverse rules without a dot-product case: {missing}; add cases to "
        "DOT_PRODUCT_CASES (or, for a rule that is deliberately not the transpose, "
        "list the class in NOT_TRANSPOSED with the reason)"
    )


def test_every_linear_rule_has_a_dot_product_case():
    check_every_linear_rule_has_a_case()


def test_the_tables_name_only_registered_linear_rules():
    linear = _package_linear_rules()
    assert len(linear) >= 40  # the walker does see the built-in rules
    stale = [_name(k) for k in (*DOT_PRODUCT_CASES, *NOT_TRANSPOSED, *GRAPH_CASES)
             if k not in linear]
    assert not stale


def test_the_walker_fails_for_a_linear_rule_without_a_case(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", registry.registered())  # undone after the test

    class Throwaway(L.Layer):
        def call(self, x):
            return 2.0 * x

    registry.transpose_rule(Throwaway)(registry.transpose_of_call)  # as a rule module does
    with pytest.raises(AssertionError, match=r"without a dot-product case: \['Throwaway'\]"):
        check_every_linear_rule_has_a_case()
    monkeypatch.setitem(DOT_PRODUCT_CASES, Throwaway, [case(Throwaway, (3,))])
    check_every_linear_rule_has_a_case()
    _check_dot_identity(Throwaway(), [(3,)])


@pytest.mark.parametrize("layer,shape", [
    (L.MaxPooling1D(2), (7, 3)),
    (L.MaxPooling2D(2), (6, 7, 3)),
    (L.MaxPooling2D(3, strides=2, padding="same"), (7, 7, 2)),
    (L.MaxPooling3D(2), (4, 5, 4, 2)),
    (L.GlobalMaxPooling1D(), (5, 3)),
    (L.GlobalMaxPooling2D(), (4, 5, 3)),
    (L.GlobalMaxPooling3D(), (3, 4, 3, 2)),
], ids=lambda v: getattr(v, "name", ""))
def test_max_pooling_unpool_is_exact_transpose_at_x(layer, shape):
    # Max pooling is positively homogeneous, MP(x) = J(x) x: the unpool rule,
    # J(x)ᵀ y, satisfies the identity at the forward input x.
    x = tf.constant(RNG.normal(size=(2, *shape)), tf.float32)
    out = layer(x)
    y = tf.constant(RNG.normal(size=out.shape), tf.float32)
    back = _apply_rule(layer, [shape], y, inputs=[x], max_pool_reverse="unpool")
    assert _dot(out, y) == pytest.approx(_dot(x, back), rel=1e-5)
    # Each output value lands on exactly one input position.
    assert int(tf.math.count_nonzero(back)) <= int(tf.size(y))


def test_max_pooling_default_is_nearest_upsampling():
    layer = L.MaxPooling2D(2)
    y = tf.reshape(tf.range(8, dtype=tf.float32), (1, 2, 2, 2))
    back = _apply_rule(layer, [(5, 4, 2)], y)  # odd height: zero row appended
    assert back.shape == (1, 5, 4, 2)
    np.testing.assert_array_equal(back[0, :4, :, 0], np.repeat(np.repeat(y[0, :, :, 0], 2, 0), 2, 1))
    np.testing.assert_array_equal(back[0, 4], 0)


def test_upsampling_default_is_max_pooling():
    layer = L.UpSampling2D(2)
    y = tf.constant(RNG.normal(size=(1, 4, 6, 2)), tf.float32)
    back = _apply_rule(layer, [(2, 3, 2)], y)
    np.testing.assert_allclose(back, tf.nn.max_pool2d(y, 2, 2, "VALID"))


def test_rescaling_and_normalization_are_inverted():
    x = tf.constant(RNG.uniform(size=(3, 4)), tf.float32)
    rescale = L.Rescaling(2.0, offset=-1.0)
    np.testing.assert_allclose(_apply_rule(rescale, [(4,)], rescale(x)), x, atol=1e-6)
    norm = L.Normalization(mean=[1.0, 2.0, 3.0, 4.0], variance=[4.0, 1.0, 9.0, 0.25])
    np.testing.assert_allclose(_apply_rule(norm, [(4,)], norm(x)), x, atol=1e-5)


@pytest.mark.parametrize("invert", [False, True])
def test_normalization_inverse_with_zero_and_tiny_variance(invert):
    # Keras divides by max(sqrt(variance), epsilon): a zero-variance feature is
    # scaled by 1/epsilon, and the inverse must scale it back by epsilon.
    norm = L.Normalization(invert=invert)
    norm.adapt(np.array([[0.0, 1.0], [0.0, 3.0]], np.float32))
    x = tf.constant([[0.5, 2.5], [-1.0, 0.0]], tf.float32)
    np.testing.assert_allclose(_apply_rule(norm, [(2,)], norm(x)), x, rtol=1e-5, atol=1e-6)
    # Inverted, x·epsilon is added to the mean: a nonzero mean would round it away in float32.
    mean = 0.0 if invert else 0.25
    for variance in (0.0, 1e-20, 1e-12, 1e-6):
        tiny = L.Normalization(mean=[mean], variance=[variance], invert=invert)
        x = tf.constant([[0.5], [0.3]], tf.float32)
        np.testing.assert_allclose(_apply_rule(tiny, [(1,)], tiny(x)), x, rtol=1e-5, atol=1e-7)


def _linear_model(build):
    inputs = keras.Input((6, 6, 2))
    outputs = build(inputs)
    return kr.ReversibleModel(inputs, outputs)


@pytest.mark.parametrize("name,build", [
    ("fan-out+add", lambda x: L.Add()([L.Conv2D(3, 3, padding="same")(x),
                                        L.Conv2D(3, 1)(x)])),
    ("residual", lambda x: (lambda h: L.Add()([h, L.Conv2D(2, 3, padding="same")(
        L.Conv2D(2, 3, padding="same")(h))]))(L.Conv2D(2, 1)(x))),
    ("dense-block", lambda x: (lambda h: L.Concatenate()([h, L.Conv2D(3, 3, padding="same")(h)]))(
        L.Conv2D(2, 3, padding="same")(x))),
    ("shared-tensor", lambda x: L.Concatenate()([L.Dense(3)(L.Flatten()(x)), L.Dense(2)(L.Flatten()(x))])),
    ("avgpool+flatten+dense", lambda x: L.Dense(5)(L.Flatten()(L.AveragePooling2D(2)(
        L.Conv2D(4, 3, strides=2, padding="same")(x))))),
])
def test_whole_graph_reverse_is_the_transpose(name, build):
    """With no range ops and zero biases, the reverse pass is exactly Aᵀ."""
    model = _linear_model(build)
    for layer in model.layers:
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(tf.zeros_like(layer.bias))
    x = tf.constant(RNG.normal(size=(2, 6, 6, 2)), tf.float32)
    ax = model(x)
    y = tf.constant(RNG.normal(size=ax.shape), tf.float32)
    graph = model.reverse_program.graph
    back = graph.run(y, {}, training=False)[graph.input_keys[0]]
    assert _dot(ax, y) == pytest.approx(_dot(x, back), rel=1e-4)


def test_the_walker_skips_rules_defined_outside_the_package(monkeypatch):
    # A README example or a test may have registered rules earlier in this process.
    monkeypatch.setattr(registry, "_REGISTRY", registry.registered())

    class Foreign(L.Layer):
        def call(self, x):
            return x

    class Partial(Foreign):
        pass

    namespace = {}
    exec("def foreign(layer, y):\n    return y", namespace)  # no __module__, like exec'd README code
    kr.register_reverse_rule(Foreign)(namespace["foreign"])
    kr.register_reverse_rule(Partial)(functools.partial(lambda layer, y: y))
    assert Foreign not in _package_linear_rules() and Partial not in _package_linear_rules()
    check_every_linear_rule_has_a_case()
