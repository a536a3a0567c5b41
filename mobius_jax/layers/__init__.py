"""Flax linen layers built on `mobius_jax.ops`: dense, Möbius maps, attention, encoder layers."""

from mobius_jax.layers.attention import MobiusSelfAttention, SelfAttention
from mobius_jax.layers.config import LayerConfig
from mobius_jax.layers.dense import ComplexDense, ComplexScale, dense
from mobius_jax.layers.encoder_layer import (
  ComplexEncoderLayer,
  EncoderLayer,
  FeedForward,
  layer_norm,
)
from mobius_jax.layers.mobius import MobiusMap, identity_init, unitary_init

__all__ = [
  "ComplexDense",
  "ComplexEncoderLayer",
  "ComplexScale",
  "EncoderLayer",
  "FeedForward",
  "LayerConfig",
  "MobiusMap",
  "MobiusSelfAttention",
  "SelfAttention",
  "dense",
  "identity_init",
  "layer_norm",
  "unitary_init",
]
