"""`MobiusConfig`: the transformers configuration of a MöbiusBERT / MöbiusRoFormer encoder.

Shipped beside `modeling_mobius.py` in a model folder that `mobius_jax` exported, and loaded by
`AutoConfig.from_pretrained(DIR, trust_remote_code=True)`. The fields follow BERT's names where
BERT has the field; the Möbius fields are mobius_jax's `ModelConfig` fields, with the layout as
one letter per layer ("M" Möbius, "V" vanilla) and the number of Möbius heads resolved.
"""

from __future__ import annotations

from transformers import PretrainedConfig

FAMILIES = ("bert", "roformer")
ACTIVATIONS = ("gelu", "gelu_new", "relu")
MOBIUS_QUERIES = ("elementwise", "linear")
MOBIUS_KEY_VALUES = ("dense", "elementwise")
MOBIUS_SCORES = ("hermitian", "bilinear", "magnitude")
MOBIUS_EMBEDDINGS = ("stream", "split")


class MobiusConfig(PretrainedConfig):
  """An encoder with Möbius layers (MöbiusAttention, arXiv 2409.12175) among BERT's layers.

  Args:
    family: "bert" (learned absolute positions, a pooler) or "roformer" (rotary positions).
    layout: one letter per layer, "M" Möbius or "V" vanilla, e.g. "MVVM"; default Möbius layers
      first and last.
    embedding_size: RoFormer's embedding width (projected to `hidden_size`); None = hidden size.
    rotary: rotary positions on queries and keys; None = on for RoFormer, off for BERT.
    rotary_base: the rotary frequencies' base.
    num_mobius_heads: heads of a Möbius layer whose query is a Möbius map; None = half.
    mobius_query: "elementwise" (the map of the input, per dimension) or "linear" (the map
      after a complex-linear query).
    mobius_key_value: "dense" (complex dense keys and values) or "elementwise" (per-dimension
      complex scalings).
    mobius_score: how the complex scores become real: "hermitian" Re(q · conj(k)), "bilinear"
      Re(q · k), or "magnitude" |q · conj(k)|; scaled by 1 / √(2C) for C complex dims a head.
    mobius_eps: ε of the pole-safe map n · conj(m) / (|m|² + ε); 0 is the exact map.
    mobius_embeddings: the imaginary channel of a Möbius layer 0: "stream" (the raw position
      encoding) or "split" (its LayerNorm, with the positions left out of the real channel).
    mobius_imag_gate: a learned per-dimension gate on the imaginary channel where a Möbius
      layer takes it from the real side.
    The other arguments are BERT's (`BertConfig`).
  """

  model_type = "mobius"

  def __init__(
    self,
    family: str = "bert",
    vocab_size: int = 30522,
    hidden_size: int = 768,
    num_hidden_layers: int = 12,
    num_attention_heads: int = 12,
    intermediate_size: int = 3072,
    hidden_act: str = "gelu",
    hidden_dropout_prob: float = 0.1,
    attention_probs_dropout_prob: float = 0.1,
    max_position_embeddings: int = 512,
    type_vocab_size: int = 2,
    initializer_range: float = 0.02,
    layer_norm_eps: float = 1e-12,
    embedding_size: int | None = None,
    layout: str | None = None,
    rotary: bool | None = None,
    rotary_base: float = 10000.0,
    num_mobius_heads: int | None = None,
    mobius_query: str = "elementwise",
    mobius_key_value: str = "dense",
    mobius_score: str = "hermitian",
    mobius_eps: float = 1e-4,
    mobius_embeddings: str = "stream",
    mobius_imag_gate: bool = False,
    pad_token_id: int = 0,
    **kwargs,
  ):
    super().__init__(pad_token_id=pad_token_id, **kwargs)
    self.family = family
    self.vocab_size = vocab_size
    self.hidden_size = hidden_size
    self.num_hidden_layers = num_hidden_layers
    self.num_attention_heads = num_attention_heads
    self.intermediate_size = intermediate_size
    self.hidden_act = hidden_act
    self.hidden_dropout_prob = hidden_dropout_prob
    self.attention_probs_dropout_prob = attention_probs_dropout_prob
    self.max_position_embeddings = max_position_embeddings
    self.type_vocab_size = type_vocab_size
    self.initializer_range = initializer_range
    self.layer_norm_eps = layer_norm_eps
    self.embedding_size = embedding_size
    self.layout = layout or ("M" + "V" * (num_hidden_layers - 2) + "M")[-num_hidden_layers:]
    self.rotary = family == "roformer" if rotary is None else rotary
    self.rotary_base = rotary_base
    self.num_mobius_heads = (
      num_attention_heads // 2 if num_mobius_heads is None else num_mobius_heads
    )
    self.mobius_query = mobius_query
    self.mobius_key_value = mobius_key_value
    self.mobius_score = mobius_score
    self.mobius_eps = mobius_eps
    self.mobius_embeddings = mobius_embeddings
    self.mobius_imag_gate = mobius_imag_gate
    self._check()
    self.embedding_size = embedding_size or hidden_size

  def _check(self) -> None:
    """Raises a ValueError that names the field with a wrong value."""
    choices = {
      "family": FAMILIES,
      "hidden_act": ACTIVATIONS,
      "mobius_query": MOBIUS_QUERIES,
      "mobius_key_value": MOBIUS_KEY_VALUES,
      "mobius_score": MOBIUS_SCORES,
      "mobius_embeddings": MOBIUS_EMBEDDINGS,
    }
    for name, allowed in choices.items():
      if getattr(self, name) not in allowed:
        raise ValueError(f"MobiusConfig.{name}={getattr(self, name)!r} is not one of {allowed}.")
    hidden, heads, layers = self.hidden_size, self.num_attention_heads, self.num_hidden_layers
    if hidden % heads:
      raise ValueError(f"hidden_size={hidden} must be a multiple of num_attention_heads={heads}.")
    if self.family == "bert" and self.embedding_size not in (None, hidden):
      raise ValueError(
        f"MobiusConfig.embedding_size={self.embedding_size} is for family='roformer'; BERT's "
        f"embeddings have the hidden size ({hidden}): leave it None."
      )
    if self.rotary and (hidden // heads) % 2:
      raise ValueError("MobiusConfig.rotary needs an even head dim (hidden size / heads).")
    if len(self.layout) != layers or set(self.layout) - {"M", "V"}:
      raise ValueError(
        f"MobiusConfig.layout={self.layout!r} must have one letter, M (Möbius) or V (vanilla), "
        f"for each of the num_hidden_layers={layers} layers."
      )
    if not 0 <= self.num_mobius_heads <= heads:
      raise ValueError(
        f"MobiusConfig.num_mobius_heads={self.num_mobius_heads} must lie in [0, "
        f"num_attention_heads={heads}]."
      )
