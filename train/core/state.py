"""The train state and the pure steps: `train_step(state, batch, rng)` and `eval_step`.

Both steps are pure functions of arrays, jitted by the loop with the state's and the batch's
shardings over a device mesh (the state donated). Batch arrays are `[B, ...]`, B global.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax.training import train_state

from train.core.objectives import Objective, summarize


class TrainState(train_state.TrainState):
  # The base key of the masking and dropout streams (step s uses fold_in(rng, s)), as its raw
  # uint32 data: checkpoints hold plain arrays.
  rng: jax.Array


def init_fn(
  model: nn.Module, optimizer: optax.GradientTransformation, max_len: int
) -> Callable[[jax.Array], TrainState]:
  """`init(rng) -> TrainState`: the model's parameters from `rng`, and the optimiser's state.

  The parameters keep their logical axis names (`nn.Partitioned`); `partitioning.sharded_init`
  turns them into shardings. `rng` is a key (`jax.random.key`).
  """
  ids = jnp.zeros((1, max_len), jnp.int32)

  def init(rng):
    params_rng, state_rng = jax.random.split(rng)
    params = model.init(params_rng, ids)["params"]
    return TrainState.create(
      apply_fn=model.apply, params=params, tx=optimizer, rng=jax.random.key_data(state_rng)
    )

  return init


def abstract_state(model, optimizer, max_len: int) -> TrainState:
  """The state's shapes and dtypes (`jax.ShapeDtypeStruct` leaves), without allocating it."""
  return nn.meta.unbox(jax.eval_shape(init_fn(model, optimizer, max_len), jax.random.key(0)))


def train_step(state: TrainState, batch, rng, *, objective: Objective, accum_steps: int = 1):
  """One optimiser step on `batch`, in `accum_steps` micro-batches if > 1 (same result).

  Returns:
    (new state, metrics: loss, accuracy where there is one, grad_norm, and `finite`: whether
    the loss, the gradients and the new parameters are all finite).
  """

  mask_rng, rng = jax.random.split(rng)
  batch = objective.prepare(batch, mask_rng)
  scale = mean_scale(objective, batch)

  def loss_and_grads(micro, rng):
    (_, (loss_sum, sums)), grads = jax.value_and_grad(
      lambda p: scaled_loss(objective, p, micro, rng, scale), has_aux=True
    )(state.params)
    sums = {k: v for k, v in sums.items() if k != "predictions"}
    return {"loss_sum": loss_sum, **sums}, grads

  if accum_steps == 1:
    totals, grads = loss_and_grads(batch, rng)
  else:
    micro = jax.tree.map(lambda x: x.reshape(accum_steps, -1, *x.shape[1:]), batch)
    rngs = jax.random.split(rng, accum_steps)

    def body(carry, inputs):
      return jax.tree.map(jnp.add, carry, loss_and_grads(*inputs)), None

    first = jax.tree.map(lambda x: x[0], (micro, rngs))
    zeros = jax.tree.map(jnp.zeros_like, jax.eval_shape(loss_and_grads, *first))
    (totals, grads), _ = jax.lax.scan(body, zeros, (micro, rngs))
  state = state.apply_gradients(grads=grads)
  means, grad_norm = summarize(totals), optax.tree.norm(grads)
  # Known on the device at every step, so that no non-finite state is ever saved.
  finite = jnp.isfinite(means["loss"]) & jnp.isfinite(grad_norm) & all_finite(state.params)
  return state, {**means, "grad_norm": grad_norm, "finite": finite}


def mean_scale(objective: Objective, batch) -> jax.Array:
  """1 / the number of examples (or masked tokens) in the whole prepared batch."""
  return 1.0 / jnp.maximum(objective.count(batch), 1.0)


def scaled_loss(objective: Objective, params, batch, rng, scale, **kwargs):
  """(loss_sum · scale, (loss_sum, sums)): what the steps differentiate.

  The objective sums over examples; differentiating the sum times 1 / count gives the mean's
  gradient directly (for micro-batches too, count being the whole batch's), with no pass over
  the gradient tree to divide it.
  """
  loss_sum, sums = objective.loss(params, batch, rng, train=True, **kwargs)
  return loss_sum * scale, (loss_sum, sums)


def all_finite(tree) -> jax.Array:
  """True where every element of every array in `tree` is finite: a bool scalar.

  A NaN or ±inf anywhere makes the arrays' float32 sum NaN or ±inf, so the sum tells: one pass
  over each array, where `isfinite(x).all()` takes two on XLA:CPU. The sum overflows only past
  3.4e38, which would report a finite state as non-finite (the safe side) and needs parameters
  no training reaches.
  """
  return jnp.isfinite(sum(jnp.sum(x, dtype=jnp.float32) for x in jax.tree.leaves(tree)))


def eval_step(state: TrainState, batch, *, objective: Objective, rng: jax.Array):
  """Sums over a batch (`loss_sum`, `count`, …, `predictions`): no dropout, fixed masking."""
  loss_sum, sums = objective.loss(state.params, objective.prepare(batch, rng), rng, train=False)
  return {"loss_sum": loss_sum, **sums}


# Parameter groups of the gradient norms `diagnostics_step` reports, by leaf name.
COMPLEX_LEAVES = ("kernel_real", "kernel_imag", "bias_real", "bias_imag")


def diagnostics_step(state: TrainState, batch, rng, *, objective: Objective) -> dict:
  """What explains a run's (in)stability, on one batch: gradient norms of the mean loss (what
  the optimiser clips) per parameter group (Möbius coefficients, complex projections, the
  rest), the learned maps' |ad − bc| (smallest, median) and how near the inputs come to the
  maps' poles (`MobiusMap`'s diagnostics)."""
  mask_rng, rng = jax.random.split(rng)
  batch = objective.prepare(batch, mask_rng)
  scale = mean_scale(objective, batch)
  (_, (_, sums)), grads = jax.value_and_grad(
    lambda p: scaled_loss(objective, p, batch, rng, scale, diagnose=True), has_aux=True
  )(state.params)
  groups = {"mobius": [], "complex": [], "other": []}
  for path, grad in jax.tree_util.tree_flatten_with_path(grads)[0]:
    name = getattr(path[-1], "key", None)
    group = "mobius" if name == "coefficients" else "complex" if name in COMPLEX_LEAVES else "other"
    groups[group].append(grad)
  out = {
    f"grad_norm/{group}": optax.tree.norm(leaves) for group, leaves in groups.items() if leaves
  }
  maps = [
    leaf
    for path, leaf in jax.tree_util.tree_flatten_with_path(state.params)[0]
    if getattr(path[-1], "key", None) == "coefficients"
  ]
  if maps:
    a, b, c, d = (jnp.concatenate([m[i, 0] + 1j * m[i, 1] for m in maps]) for i in range(4))
    det = jnp.abs(a * d - b * c)
    out.update({"det/min": det.min(), "det/median": jnp.median(det)})
    sown = jax.tree_util.tree_flatten_with_path(sums["diagnostics"])[0]

    def collected(name):  # the values every MobiusMap sowed under `name`
      return jnp.stack(
        [v for path, v in sown if any(getattr(k, "key", None) == name for k in path)]
      )

    out["pole/distance_min"] = collected("pole_distance_min").min()
    out["pole/near_share"] = collected("near_pole_share").mean()
  return out
