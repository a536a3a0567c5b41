"""The optimiser: schedule values step by step, and which parameters weight decay touches."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from configs import default
from mobius_jax.models import MaskedLM, ModelConfig
from train.core import optim


def config(**optimizer):
  c = default.get_config()
  c.num_train_steps = 100
  c.optimizer.update({"learning_rate": 1e-3, "warmup_ratio": 0.1, **optimizer})
  return c


def test_linear_schedule_warms_up_then_decays_to_zero():
  schedule = optim.learning_rate_schedule(config(schedule="linear"))
  steps = [0, 5, 10, 55, 100]
  np.testing.assert_allclose([schedule(s) for s in steps], [0, 5e-4, 1e-3, 5e-4, 0], atol=1e-9)


def test_cosine_schedule_warms_up_then_follows_half_a_cosine():
  schedule = optim.learning_rate_schedule(config(schedule="cosine"))
  expected = [0, 1e-3, 1e-3 * (1 + np.cos(np.pi * 45 / 90)) / 2, 0]
  np.testing.assert_allclose([schedule(s) for s in (0, 10, 55, 100)], expected, atol=1e-9)


def tiny_mobius_params():
  model_config = ModelConfig.preset(
    "mobius_bert-tiny", vocab_size=64, mobius_key_value="elementwise"
  )
  variables = MaskedLM(model_config).init(jax.random.key(0), jnp.zeros((1, 8), jnp.int32))
  return nn.meta.unbox(variables["params"])


def test_weight_decay_spares_biases_norms_scales_and_mobius_coefficients():
  params = tiny_mobius_params()
  no_decay = default.get_config().optimizer.no_decay
  mask = traverse_util.flatten_dict(optim.weight_decay_mask(params, no_decay))
  decayed = {"/".join(path) for path, on in mask.items() if on}
  spared = {"/".join(path) for path, on in mask.items() if not on}
  assert "backbone/embeddings/word_embeddings/embedding" in decayed
  assert "backbone/encoder/layer_0/attention/output/kernel_real" in decayed
  assert "backbone/encoder/layer_1/mlp_imag/intermediate/kernel" in decayed
  for name in (
    "backbone/encoder/layer_0/attention/query_mobius/coefficients",
    "backbone/encoder/layer_0/attention/key/scale",  # ComplexScale: per-dimension
    "backbone/encoder/layer_0/attention/output/bias_imag",
    "backbone/encoder/layer_0/attention_norm_real/scale",
    "backbone/embeddings/norm/bias",
    "mlm_head/bias",
  ):
    assert name in spared, name
  assert all(path[-1] in no_decay for path in mask if not mask[path])


def test_one_step_with_zero_gradients_decays_only_the_masked_parameters():
  params = tiny_mobius_params()
  opt = optim.make_optimizer(config(warmup_ratio=0.0, weight_decay=0.1))
  updates, _ = opt.update(jax.tree.map(jnp.zeros_like, params), opt.init(params), params)
  rate = float(optim.learning_rate_schedule(config(warmup_ratio=0.0))(0))
  mask = optim.weight_decay_mask(params, default.get_config().optimizer.no_decay)

  def check(p, u, decay):
    np.testing.assert_allclose(u, -rate * 0.1 * p if decay else 0 * p, rtol=1e-6, atol=1e-12)

  jax.tree.map(check, params, updates, mask)


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_schedules_are_zero_at_the_end(name):
  assert optim.learning_rate_schedule(config(schedule=name))(100) == pytest.approx(0, abs=1e-9)


def test_composer_style_decay_removes_weight_decay_of_the_weights_per_step_at_the_peak():
  # composer's DecoupledAdamW: p ← p · (1 − weight_decay · lr_t / lr_peak), then the Adam step.
  # Step by step over warm-up, peak and decay, with zero gradients (so Adam adds nothing).
  c = config(warmup_ratio=0.1, weight_decay=1e-2, weight_decay_scaling="schedule", grad_clip=0.0)
  c.optimizer.no_decay = ("coefficients",)  # the paper configs' choice: decay all the rest
  params = {"kernel": jnp.full((3,), 2.0), "coefficients": jnp.full((2,), 3.0)}
  opt, schedule = optim.make_optimizer(c), optim.learning_rate_schedule(c)
  state, expected = opt.init(params), 2.0
  for step in range(30):
    updates, state = opt.update(jax.tree.map(jnp.zeros_like, params), state, params)
    params = jax.tree.map(lambda p, u: p + u, params, updates)
    expected *= 1 - 1e-2 * float(schedule(step)) / 1e-3
    np.testing.assert_allclose(params["kernel"], expected, rtol=1e-5)
    np.testing.assert_allclose(params["coefficients"], 3.0)
  assert expected < 2.0 * (1 - 1e-2) ** 15  # it did decay by about 1 % per step at the peak


def test_the_schedule_can_end_at_a_floor_and_clipping_can_be_off():
  schedule = optim.learning_rate_schedule(config(final_rate=0.02))
  np.testing.assert_allclose([schedule(10), schedule(100)], [1e-3, 2e-5], rtol=1e-6)
  # With eps = 1, Adam's first step is lr · g / (|g| + 1): ≈ lr for g = 100, lr / 2 for g
  # clipped to 1.
  params, grads = {"w": jnp.zeros(1)}, {"w": jnp.full(1, 100.0)}
  for clip, expected in ((0.0, -1e-3 * 100 / 101), (1.0, -1e-3 / 2)):
    opt = optim.make_optimizer(config(grad_clip=clip, eps=1.0, warmup_ratio=0.0))
    updates, _ = opt.update(grads, opt.init(params), params)
    np.testing.assert_allclose(updates["w"], expected, rtol=1e-5)


def test_frozen_parameters_get_no_update_and_no_share_of_the_clipping_norm():
  # Weight decay on for every leaf and one large gradient on the frozen leaf: were it clipped
  # together with the others, their update would shrink.
  params = {"maps": {"coefficients": jnp.full(2, 3.0)}, "dense": {"kernel": jnp.zeros(1)}}
  grads = {"maps": {"coefficients": jnp.full(2, 1e3)}, "dense": {"kernel": jnp.full(1, 100.0)}}
  c = config(grad_clip=1.0, eps=1.0, warmup_ratio=0.0, weight_decay=0.1, frozen=("maps",))
  c.optimizer.no_decay = ()
  opt = optim.make_optimizer(c)
  updates, _ = opt.update(grads, opt.init(params), params)
  np.testing.assert_array_equal(updates["maps"]["coefficients"], 0.0)
  # The kernel's gradient alone is clipped to 1: Adam's first step is lr · 1 / (1 + 1).
  np.testing.assert_allclose(updates["dense"]["kernel"], -1e-3 / 2, rtol=1e-5)


def test_frozen_names_the_model_lacks_are_refused():
  opt = optim.make_optimizer(config(frozen=("query_mobuis",)))
  with pytest.raises(ValueError, match="no module or parameter named \\['query_mobuis'\\]"):
    opt.init(tiny_mobius_params())


def test_rate_multipliers_scale_the_updates_of_what_they_name():
  params = {"maps": {"coefficients": jnp.ones(2)}, "dense": {"kernel": jnp.ones(2)}}
  grads = jax.tree.map(lambda p: jnp.full_like(p, 0.5), params)
  c = config(warmup_ratio=0.0, weight_decay=0.1, rate_multipliers=(("maps", 10.0),))
  c.optimizer.no_decay = ()
  opt = optim.make_optimizer(c)
  updates, _ = opt.update(grads, opt.init(params), params)
  np.testing.assert_allclose(updates["maps"]["coefficients"], 10 * updates["dense"]["kernel"])
  assert float(updates["dense"]["kernel"][0]) < 0  # and the unnamed leaf's update is AdamW's
  with pytest.raises(ValueError, match=r"optimizer\.rate_multipliers: .*named \['mpas'\]"):
    bad = config(rate_multipliers=(("mpas", 10.0),))
    optim.make_optimizer(bad).init(params)


def test_names_may_be_patterns_and_a_pattern_that_matches_nothing_is_refused():
  params = {"gate_0": jnp.zeros(2), "gate_5": jnp.zeros(2), "layer_1": {"kernel": jnp.zeros(2)}}
  assert optim.named_mask(params, ("gate_*",)) == {
    "gate_0": True,
    "gate_5": True,
    "layer_1": {"kernel": False},
  }
  with pytest.raises(ValueError, match=r"optimizer\.frozen: .*named \['gates_\*'\]; name some of"):
    optim.named_mask(params, ("gates_*",))
