"""The optimiser: AdamW with decoupled weight decay, warm-up then decay, gradient clipping."""

from __future__ import annotations

from typing import Literal, get_args

import jax
import ml_collections
import optax

Schedule = Literal["linear", "cosine"]
SCHEDULES: tuple[str, ...] = get_args(Schedule)
# Never decayed: biases, LayerNorm and per-dimension scales, and Möbius coefficients (decay
# would pull every map towards the degenerate all-zero matrix).
NO_DECAY = ("bias", "bias_real", "bias_imag", "scale", "coefficients")


def learning_rate_schedule(config: ml_collections.ConfigDict) -> optax.Schedule:
  """Linear warm-up over `warmup_ratio` of the steps, then linear or cosine decay to 0."""
  opt, steps = config.optimizer, config.num_train_steps
  warmup = int(opt.warmup_ratio * steps)
  if opt.schedule == "linear":
    decay = optax.linear_schedule(opt.learning_rate, 0.0, max(steps - warmup, 1))
  elif opt.schedule == "cosine":
    decay = optax.cosine_decay_schedule(opt.learning_rate, max(steps - warmup, 1))
  else:
    raise ValueError(f"optimizer.schedule={opt.schedule!r}: use one of {SCHEDULES}.")
  return optax.join_schedules(
    [optax.linear_schedule(0.0, opt.learning_rate, warmup), decay], [warmup]
  )


def weight_decay_mask(params):
  """True where AdamW's decoupled weight decay applies (see `NO_DECAY`)."""
  return jax.tree_util.tree_map_with_path(
    lambda path, _: getattr(path[-1], "key", None) not in NO_DECAY, params
  )


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """Gradient clipping by global norm, then AdamW (MosaicBERT's recipe in the paper configs)."""
  opt = config.optimizer
  return optax.chain(
    optax.clip_by_global_norm(opt.grad_clip),
    optax.adamw(
      learning_rate_schedule(config),
      b1=opt.b1,
      b2=opt.b2,
      eps=opt.eps,
      weight_decay=opt.weight_decay,
      mask=weight_decay_mask,
    ),
  )
