"""A small Vision Transformer (Dosovitskiy et al. 2021) for 32×32 images: attention reversed."""

import keras

import keras_reversible as kr
from zoo.registry import ModelInfo, register

L = keras.layers


@keras.saving.register_keras_serializable(package="zoo")
class PositionEmbedding(L.Layer):
    """Adds a learned vector per sequence position: ``x + P``.

    Its reverse rule treats ``P`` as a bias and subtracts it (like Dense's ``b``).

    Args:
        **kwargs: ``keras.layers.Layer`` keywords.
    """

    def build(self, input_shape):
        self.embedding = self.add_weight(
            name="embedding", shape=tuple(input_shape[1:]),
            initializer=keras.initializers.RandomNormal(stddev=0.02))

    def call(self, x):
        return x + keras.ops.cast(self.embedding, x.dtype)


@kr.register_reverse_rule(PositionEmbedding)
def _position_embedding_reverse(layer, y):
    return y - keras.ops.cast(layer.embedding, y.dtype)


INFO = ModelInfo(
    name="reversible_vit",
    paper="racecar",
    table="beyond the papers: a ViT (Dosovitskiy et al. 2021; DESIGN §7)",
    input_shape=(32, 32, 3),
    num_classes=10,
    reversal=dict(depth=None, racecar_weight=1.0, reverse_from="encoder_norm",
                  input_range="relu", reduction="mean"),
    task_loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    test_input_shape=(16, 16, 3),
    # patch conv 4·4·3·64 + 64 = 3,136; positions 64·64 = 4,096; per block
    # LN 128 + attention 4·(64·64 + 64) = 16,640 + LN 128 + MLP 64·128 + 128
    # + 128·64 + 64 = 16,576, so 33,472 · 4 = 133,888; final LN 128;
    # head 64·10 + 10 = 650.
    parameters=141_898,
    trainable_parameters=141_898,
    # The classifier after I_r (the final LayerNormalization) gets no racecar gradient.
    gradient_exceptions=("logits",),
)


@register(INFO)
def reversible_vit(num_classes=INFO.num_classes, input_shape=INFO.input_shape, patch_size=4,
                   hidden_dim=64, num_layers=4, num_heads=4, mlp_dim=128, **reversal):
    """A small ViT: patch embedding, pre-norm transformer blocks, mean-pooled head.

    ``Conv2D(hidden_dim, patch_size, strides=patch_size)`` cuts the image into
    patches (8×8 = 64 of 4×4 pixels at 32×32), a learned position embedding is
    added, then ``num_layers`` blocks ``x + MHA(LN(x))``, ``x + MLP(LN(x))``
    (GELU), a final LayerNormalization (``I_r``), the mean over patches and a
    ``Dense(num_classes)`` head (logits). 141,898 parameters at the defaults.

    Reversal defaults: racecar on every constrained point (``depth=None``),
    λ = 1 with ``reduction="mean"``, from the final normalization
    (``reverse_from="encoder_norm"``) back to the pixels (``input_range=
    "relu"``, images in [0, 1]). The attention weights of the forward pass are
    data; the value path is transposed (``keras_reversible.rules.attention``).

    Args:
        num_classes: classes (10).
        input_shape: ``(32, 32, 3)``; each side a multiple of ``patch_size``.
        patch_size: pixels per patch side (4).
        hidden_dim: width of the token vectors (64).
        num_layers: transformer blocks (4).
        num_heads: attention heads (4), each ``hidden_dim // num_heads`` wide.
        mlp_dim: hidden width of each block's MLP (128).
        **reversal: reversal settings of ``kr.ReversibleModel``.

    Returns:
        A ``kr.ReversibleModel``.

    Raises:
        ValueError: a side of ``input_shape`` not a multiple of ``patch_size``,
            or ``hidden_dim`` not a multiple of ``num_heads``.

    Example:

    ```python
    import zoo
    model = zoo.reversible_vit(num_layers=2)
    model.output.shape  # (None, 10)
    ```
    """
    if input_shape[0] % patch_size or input_shape[1] % patch_size:
        raise ValueError(f"reversible_vit: input_shape {tuple(input_shape)} must have sides that "
                         f"are multiples of patch_size={patch_size}.")
    if hidden_dim % num_heads:
        raise ValueError(f"reversible_vit: hidden_dim={hidden_dim} must be a multiple of "
                         f"num_heads={num_heads}.")
    patches = (input_shape[0] // patch_size) * (input_shape[1] // patch_size)
    inputs = keras.Input(input_shape, name="image")
    x = L.Conv2D(hidden_dim, patch_size, strides=patch_size, name="patches")(inputs)
    x = L.Reshape((patches, hidden_dim), name="tokens")(x)
    x = PositionEmbedding(name="positions")(x)
    for i in range(1, num_layers + 1):
        y = L.LayerNormalization(epsilon=1e-6, name=f"block{i}_norm1")(x)
        y = L.MultiHeadAttention(num_heads, hidden_dim // num_heads, name=f"block{i}_attention")(y, y)
        x = L.Add(name=f"block{i}_add1")([x, y])
        y = L.LayerNormalization(epsilon=1e-6, name=f"block{i}_norm2")(x)
        y = L.Dense(mlp_dim, activation="gelu", name=f"block{i}_mlp1")(y)
        y = L.Dense(hidden_dim, name=f"block{i}_mlp2")(y)
        x = L.Add(name=f"block{i}_add2")([x, y])
    x = L.LayerNormalization(epsilon=1e-6, name="encoder_norm")(x)
    x = L.GlobalAveragePooling1D(name="pool")(x)
    outputs = L.Dense(num_classes, name="logits")(x)
    return kr.ReversibleModel(inputs, outputs, name="reversible_vit",
                              **INFO.settings(input_shape, reversal))
