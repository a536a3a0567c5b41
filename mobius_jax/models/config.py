"""`ModelConfig`: one validated dataclass for BERT, RoFormer and their Möbius versions.

Presets are decoded from one string, `"<model>-<size>"`:
  model: bert, roformer, mobius_bert, mobius_roformer
  size:  tiny, mini, small, medium, base, large
e.g. `ModelConfig.preset("mobius_bert-base")` is the paper's MöbiusBERT: 11 layers, framed
(Möbius layers first and last), half the heads of each Möbius layer Möbius heads.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, get_args

from mobius_jax.layers.config import LayerConfig, check_in, check_positive

Family = Literal["bert", "roformer"]
Layout = Literal["none", "framed", "top", "bottom", "stacked", "alternating", "all"]
Model = Literal["bert", "roformer", "mobius_bert", "mobius_roformer"]
MobiusEmbeddings = Literal["stream", "split"]
FAMILIES: tuple[str, ...] = get_args(Family)
LAYOUTS: tuple[str, ...] = get_args(Layout)
MODELS: tuple[str, ...] = get_args(Model)
MOBIUS_EMBEDDINGS: tuple[str, ...] = get_args(MobiusEmbeddings)
# (num_layers, hidden_size, num_heads, intermediate_size): BERT's sizes and the small BERTs
# of Turc et al. (2019).
SIZES = {
  "tiny": (2, 128, 2, 512),
  "mini": (4, 256, 4, 1024),
  "small": (4, 512, 8, 2048),
  "medium": (8, 512, 8, 2048),
  "base": (12, 768, 12, 3072),
  "large": (24, 1024, 16, 4096),
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelConfig(LayerConfig):
  """A whole encoder: the `LayerConfig` fields plus embeddings, depth and Möbius layout.

  Layouts (V vanilla layer, M Möbius layer, for n layers):
    none V…V · framed M V…V M · top V…V M · bottom M V…V · stacked M M V…V ·
    alternating M V M V… · all M…M · or an explicit string such as "MVVVVVVVVVM".

  Embeddings read by a Möbius layer 0 (`mobius_embeddings`; a vanilla layer 0 reads the
  family's usual embeddings either way):
    stream  real LayerNorm(word + position + type), imaginary the raw position encoding:
            BERT's learned rows (std `initializer_range`: 50× below the real channel at
            initialisation) or RoFormer's sinusoids (RMS 1/√2);
    split   the paper's "token embedding real, position embedding imaginary": real
            LayerNorm(word + type), imaginary LayerNorm(position encoding), each with its own
            LayerNorm (`norm`, `position_norm`) and the embeddings' dropout; both start at RMS
            1. (RoFormer's real channel, whose sum has no positions, is the same in both.)
  """

  family: Family = "bert"  # "bert" (learned absolute positions) or "roformer" (rotary)
  vocab_size: int = 30_522
  num_layers: int = 12
  embedding_size: int | None = None  # RoFormer's embedding width; None = hidden_size
  max_position_embeddings: int = 512
  type_vocab_size: int = 2
  layout: Layout | str = "none"  # a named layout, or one letter per layer
  # None: on for RoFormer, off for BERT (True on BERT gives a BERT with rotary positions).
  rotary: bool | None = None
  mobius_embeddings: MobiusEmbeddings = "stream"  # or "split" (see above)
  # A learned per-dimension gate `imag_gate` on the imaginary channel where a Möbius layer
  # takes it from the real side (the position encoding, or the first layer's input), starting
  # at 0: the channel starts silent and grows under training. What function-preserving
  # upcycling (`hf.upcycle(..., form="preserving")`) uses.
  mobius_imag_gate: bool = False

  def __post_init__(self):
    if self.rotary is None:
      object.__setattr__(self, "rotary", self.family == "roformer")
    super().__post_init__()
    check_in(self, "family", FAMILIES)
    check_in(self, "mobius_embeddings", MOBIUS_EMBEDDINGS)
    check_positive(self, "vocab_size", "num_layers", "max_position_embeddings", "type_vocab_size")
    if self.family == "bert" and self.embedding_size not in (None, self.hidden_size):
      raise ValueError(
        f"ModelConfig.embedding_size={self.embedding_size} is for family='roformer'; BERT's "
        f"embeddings have the hidden size ({self.hidden_size}): leave it None."
      )
    self.layer_kinds  # noqa: B018  (validates the layout)

  @property
  def embedding_width(self) -> int:
    return self.embedding_size or self.hidden_size

  @property
  def split_embeddings(self) -> bool:
    """Whether the embeddings give layer 0 separate token and position channels ("split" with
    a Möbius layer 0), and so have a `position_norm`."""
    # Not for a vanilla layer 0: the split is how tokens enter a Möbius layer, and a vanilla
    # first layer (layouts none, top) then reads the baseline's embeddings, parameters and all,
    # so a paired comparison differs only in the Möbius layers. With Möbius layers first and
    # last (framed), both ends read as the paper says: (tokens, positions) first, (stream,
    # tokens) last.
    return self.mobius_embeddings == "split" and self.layer_kinds[0] == "M"

  @property
  def layer_kinds(self) -> str:
    """One letter per layer: "V" vanilla, "M" Möbius."""
    n, layout = self.num_layers, self.layout
    named = {
      "none": "V" * n,
      "all": "M" * n,
      "framed": ("M" + "V" * (n - 2) + "M")[-n:] if n > 1 else "M",
      "top": "V" * (n - 1) + "M",
      "bottom": "M" + "V" * (n - 1),
      "stacked": ("MM" + "V" * (n - 2))[:n],
      "alternating": ("MV" * n)[:n],
    }
    if layout in named:
      return named[layout]
    kinds = layout.upper()
    if len(kinds) != n or set(kinds) - {"M", "V"}:
      raise ValueError(
        f"ModelConfig.layout={layout!r} is neither one of {LAYOUTS} nor a string of "
        f"{n} letters M (Möbius) or V (vanilla), one per layer (num_layers={n})."
      )
    return kinds

  @classmethod
  def preset(cls, name: str, **overrides) -> ModelConfig:
    """`ModelConfig.preset("mobius_bert-base", dtype="bfloat16")`: see the module docstring."""
    model, _, size = name.partition("-")
    if model not in MODELS or size not in SIZES:
      raise ValueError(
        f"Unknown preset {name!r}: expected '<model>-<size>' with model in {MODELS} and size "
        f"in {tuple(SIZES)}, e.g. 'mobius_bert-base'."
      )
    num_layers, hidden, heads, intermediate = SIZES[size]
    fields = dict(
      family=model.removeprefix("mobius_"),
      num_layers=num_layers,
      hidden_size=hidden,
      num_heads=heads,
      intermediate_size=intermediate,
    )
    if model.startswith("mobius_"):
      fields["layout"] = "framed"
      if size == "base":
        fields["num_layers"] = 11  # The paper's MöbiusBERT: one layer fewer than BERT-base.
    return cls(**{**fields, **overrides})
