"""`ModelConfig`: the presets, and invalid fields that name themselves and the allowed values."""

import pytest

from mobius_jax.models import ModelConfig


def tiny(model, **overrides):
  """A tiny preset with a small vocabulary."""
  return ModelConfig.preset(f"{model}-tiny", vocab_size=64, **overrides)


def test_paper_presets():
  config = ModelConfig.preset("mobius_bert-base")
  assert config.layer_kinds == "MVVVVVVVVVM"
  assert config.mobius_heads == 6 and config.head_dim == 64
  assert ModelConfig.preset("mobius_roformer-base").rotary
  assert ModelConfig.preset("bert-large").num_layers == 24


@pytest.mark.parametrize(
  "overrides, message",
  [
    (dict(family="gpt"), r"family='gpt' is not one of \('bert', 'roformer'\)"),
    (dict(layout="zigzag"), r"layout='zigzag' is neither one of \('none', 'framed'"),
    (dict(layout="MVX"), "2 letters M"),
    (dict(hidden_act="swish"), r"hidden_act='swish' is not one of \('gelu'"),
    (dict(mobius_score="cosine"), r"mobius_score='cosine' is not one of \('hermitian'"),
    (dict(num_mobius_heads=3), r"num_mobius_heads=3 must lie in \[0, num_heads=2\]"),
    (dict(hidden_size=129), "hidden_size=129 must be a multiple of num_heads=2"),
    (dict(dtype="float8"), "dtype='float8' is not one of"),
    (dict(embedding_size=64), "embedding_size=64 is for family='roformer'"),
    (dict(mobius_embeddings="sum"), r"mobius_embeddings='sum' is not one of \('stream', 'split'\)"),
  ],
)
def test_invalid_configs_name_the_field_and_the_allowed_values(overrides, message):
  with pytest.raises(ValueError, match=message):
    tiny("bert", **overrides)


def test_unknown_presets_list_the_choices():
  with pytest.raises(ValueError, match=r"model in \('bert', 'roformer', 'mobius_bert'"):
    ModelConfig.preset("gpt-base")
  with pytest.raises(ValueError, match=r"size in \('tiny', 'mini'"):
    ModelConfig.preset("bert-huge")
