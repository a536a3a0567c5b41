"""`count_params` and `count_encoder_params`: Hugging Face's count, complex weights as two reals."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from mobius_jax.models import ModelConfig, Transformer
from mobius_jax.models.params import count_encoder_params, count_params

IDS = jnp.array([[5, 7, 9, 11, 13, 3], [4, 6, 8, 10, 12, 14]])


def tiny(model, **overrides):
  """A tiny preset with a small vocabulary."""
  return ModelConfig.preset(f"{model}-tiny", vocab_size=64, **overrides)


def init(model, config, seed=0):
  return nn.meta.unbox(model.init(jax.random.key(seed), IDS))["params"]


def test_bert_base_has_hugging_faces_parameter_count():
  # HF BertModel (bert-base-uncased, with pooler): 109,482,240 parameters.
  assert count_encoder_params(ModelConfig.preset("bert-base")) == 109_482_240


def test_count_params_counts_complex_weights_as_two_reals():
  config = tiny("mobius_bert", layout="M", num_layers=1)
  params = init(Transformer(config), config)
  key = params["encoder"]["layer_0"]["attention"]["key"]
  assert count_params(key) == 2 * (128 * 128 + 128)
  assert count_params(params) == count_encoder_params(config)
