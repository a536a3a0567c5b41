"""The optimiser: AdamW with decoupled weight decay, warm-up then decay, optional clipping."""

from __future__ import annotations

import fnmatch
import functools
from typing import Literal, get_args

import jax
import ml_collections
import optax

Schedule = Literal["linear", "cosine"]
SCHEDULES: tuple[str, ...] = get_args(Schedule)
DecayScaling = Literal["learning_rate", "schedule"]
DECAY_SCALINGS: tuple[str, ...] = get_args(DecayScaling)


def learning_rate_schedule(config: ml_collections.ConfigDict) -> optax.Schedule:
  """Linear warm-up over `warmup_ratio` of the steps, then linear or cosine decay to
  `final_rate` × the peak (composer's `alpha_f`)."""
  opt, steps = config.optimizer, config.num_train_steps
  warmup = int(opt.warmup_ratio * steps)
  peak, final = opt.learning_rate, opt.final_rate * opt.learning_rate
  if opt.schedule == "linear":
    decay = optax.linear_schedule(peak, final, max(steps - warmup, 1))
  elif opt.schedule == "cosine":
    decay = optax.cosine_decay_schedule(peak, max(steps - warmup, 1), alpha=opt.final_rate)
  else:
    raise ValueError(f"optimizer.schedule={opt.schedule!r}: use one of {SCHEDULES}.")
  return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), decay], [warmup])


def weight_decay_mask(params, no_decay: tuple[str, ...]):
  """True where weight decay applies: every leaf whose name is not in `no_decay`."""
  return jax.tree_util.tree_map_with_path(
    lambda path, _: getattr(path[-1], "key", None) not in no_decay, params
  )


def named_mask(params, names: tuple[str, ...], key: str = "frozen"):
  """True for each leaf with a module or leaf name on its path that one of `names` matches: a
  name, or a shell-style pattern (`"imag_gate_*"`: the gate of every layer that has one).

  Raises:
    ValueError: a name matches nothing on any leaf's path (a typo would select nothing); `key`
      is the config key named in the message.
  """
  named, matched = set(), set()

  def is_named(path, _):
    on_path = {entry.key for entry in path if isinstance(getattr(entry, "key", None), str)}
    named.update(on_path)
    hits = {name for name in names if any(fnmatch.fnmatchcase(k, name) for k in on_path)}
    matched.update(hits)
    return bool(hits)

  mask = jax.tree_util.tree_map_with_path(is_named, params)
  if unknown := set(names) - matched:
    raise ValueError(
      f"optimizer.{key}: the model has no module or parameter named "
      f"{sorted(unknown)}; name some of {sorted(named)}."
    )
  return mask


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """Gradient clipping by global norm (unless `grad_clip` is 0), then AdamW; the parameters
  under `frozen` names get no update, and are left out of the clipping's norm; those under a
  name of `rate_multipliers` have their updates (decay included) scaled by its factor.

  The weight decay of a step is `weight_decay × lr_t` with `weight_decay_scaling="learning_rate"`
  (optax's and PyTorch's AdamW), or `weight_decay × lr_t / lr_peak` with `"schedule"` (composer's
  `DecoupledAdamW`, as MosaicBERT and the paper ran it: the weights lose `weight_decay` of
  themselves per step at the peak rate); the second is the first with weight_decay / lr_peak.
  """
  opt = config.optimizer
  weight_decay = opt.weight_decay
  if opt.weight_decay_scaling == "schedule" and opt.learning_rate > 0:
    weight_decay = opt.weight_decay / opt.learning_rate
  adamw = optax.adamw(
    learning_rate_schedule(config),
    b1=opt.b1,
    b2=opt.b2,
    eps=opt.eps,
    weight_decay=weight_decay,
    mask=lambda params: weight_decay_mask(params, tuple(opt.no_decay)),
  )
  tx = adamw if opt.grad_clip == 0 else optax.chain(optax.clip_by_global_norm(opt.grad_clip), adamw)
  for name, factor in opt.rate_multipliers:
    mask = functools.partial(named_mask, names=(name,), key="rate_multipliers")
    tx = optax.chain(tx, optax.masked(optax.scale(factor), mask))
  if not opt.frozen:
    return tx
  # Zeroed before the clipping (no share of its norm) and after AdamW (no weight decay).
  freeze = optax.masked(optax.set_to_zero(), lambda params: named_mask(params, opt.frozen))
  return optax.chain(freeze, tx, freeze)
