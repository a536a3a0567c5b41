"""The train state and its steps (`train.core.state`): the key kept as raw data, the abstract
state, and micro-batches that give the full batch's step."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from mobius_jax.models import MaskedLM, ModelConfig
from train.core import objectives, optim
from train.core import state as train_state


def model_and_optimizer(**overrides):
  config = ModelConfig.preset(
    "mobius_bert-tiny", vocab_size=64, hidden_dropout=0.0, attention_dropout=0.0, **overrides
  )
  return MaskedLM(config), optim.make_optimizer(default.get_config())


def test_the_state_keeps_the_keys_raw_data_and_the_abstract_state_its_shapes():
  model, optimizer = model_and_optimizer()
  key = jax.random.key(0)
  state = nn.meta.unbox(train_state.init_fn(model, optimizer, 16)(key))
  assert state.rng.dtype == jnp.uint32 and state.rng.shape == (2,)  # a plain array to save
  np.testing.assert_array_equal(state.rng, jax.random.key_data(jax.random.split(key)[1]))
  assert state.step == 0
  abstract = train_state.abstract_state(model, optimizer, 16)
  assert all(isinstance(x, jax.ShapeDtypeStruct) for x in jax.tree.leaves(abstract))
  shapes = [(x.shape, x.dtype) for x in jax.tree.leaves(abstract)]
  assert shapes == [(jnp.shape(x), jnp.asarray(x).dtype) for x in jax.tree.leaves(state)]


@pytest.mark.parametrize("accum_steps", [2, 4])
def test_micro_batches_give_the_full_batchs_step(accum_steps):
  # Without dropout, the same masks (drawn for the whole batch first): the same loss, gradient
  # norm and parameters as one step on all 8 rows.
  model, optimizer = model_and_optimizer()
  objective = objectives.MaskedLMObjective(
    model, dict(rate=0.3, max_predictions=6, mask_id=4, special_ids=(0, 1, 2, 3, 4), vocab_size=64)
  )
  state = nn.meta.unbox(train_state.init_fn(model, optimizer, 16)(jax.random.key(0)))
  batch = {"input_ids": jax.random.randint(jax.random.key(1), (8, 16), 5, 64)}
  steps = [
    jax.jit(
      lambda s, b, r, n=n: train_state.train_step(s, b, r, objective=objective, accum_steps=n)
    )
    for n in (1, accum_steps)
  ]
  (full, a), (micro, b) = (step(state, batch, jax.random.key(2)) for step in steps)
  assert bool(a["finite"]) and bool(b["finite"])
  for key in ("loss", "accuracy", "grad_norm"):
    np.testing.assert_allclose(b[key], a[key], rtol=1e-5)
  jax.tree.map(
    lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7), full.params, micro.params
  )
  assert int(full.step) == int(micro.step) == 1
