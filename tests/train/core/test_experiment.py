"""The experiment a config builds and the run a workdir restores: the evaluations it adds (masked
LM at 15 %), a folder that holds no run, and a checkpoint's feed-forward blocks widened."""

import dataclasses

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mobius_jax.models import ModelConfig, Transformer
from tests.helpers import (
  mock_data,  # noqa: F401  (autouse: TFDS's mock data for every test here)
  pretrain_config,
)
from train.core import experiment, loop


def test_masked_lm_accuracy_is_also_reported_at_15_percent(tmp_path):
  # MosaicBERT evaluates at 15 % whatever its training rate; so do we, beside the training rate.
  summary = loop.train_and_evaluate(pretrain_config(mask_rate=0.3), tmp_path / "run")
  assert set(summary["eval"]) == {"validation", "validation_mask0.15"}
  assert summary["eval"]["validation"] != summary["eval"]["validation_mask0.15"]


def test_a_folder_that_is_no_run_gives_a_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError, match="no training workdir"):
    experiment.restore_run(tmp_path)


def test_widened_feed_forward_computes_the_same_and_trains_every_new_weight():
  source_config = ModelConfig.preset("bert-tiny", vocab_size=64, hidden_dropout=0.0)
  wide_config = dataclasses.replace(source_config, intermediate_size=640)
  ids = jnp.array([[2, 5, 9, 11, 7, 0], [3, 8, 1, 4, 6, 12]])

  def init(config, seed):
    params = Transformer(config).init(jax.random.key(seed), ids)["params"]
    return jax.tree.map(np.asarray, nn.meta.unbox(params))

  source, fresh = init(source_config, 0), init(wide_config, 1)
  wide = experiment.widened_feed_forward(source, fresh)
  chex.assert_trees_all_equal_shapes(wide, fresh)

  def run(params, config=wide_config):
    return Transformer(config).apply({"params": params}, ids, attention_mask=ids > 0).sequence

  np.testing.assert_allclose(run(wide), run(source, source_config), atol=1e-6)
  intermediate = wide["encoder"]["layer_1"]["mlp"]["intermediate"]["kernel"]
  fresh_kernel = fresh["encoder"]["layer_1"]["mlp"]["intermediate"]["kernel"]
  np.testing.assert_array_equal(intermediate[:, 512:], fresh_kernel[:, 512:])
  grads = jax.grad(lambda p: (run(p) ** 2).sum())(wide)
  new_rows = grads["encoder"]["layer_0"]["mlp"]["output"]["kernel"][512:]
  assert (np.abs(new_rows).max(axis=1) > 0).all()  # each new unit's output weights move
