"""Encoders and task models built from `mobius_jax.layers`, their presets and HF interop."""

from mobius_jax.models.config import (
  FAMILIES,
  LAYOUTS,
  MOBIUS_EMBEDDINGS,
  MODELS,
  SIZES,
  ModelConfig,
)
from mobius_jax.models.transformer import (
  EncoderOutput,
  MaskedLM,
  SequenceClassifier,
  Transformer,
)

__all__ = [
  "FAMILIES",
  "LAYOUTS",
  "MOBIUS_EMBEDDINGS",
  "MODELS",
  "SIZES",
  "EncoderOutput",
  "MaskedLM",
  "ModelConfig",
  "SequenceClassifier",
  "Transformer",
]
