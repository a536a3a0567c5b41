"""Sharding and bfloat16 equalities on optimised code, measured for `tests/e2e/test_optimised.py`.

The suite compiles with most XLA optimisations off (tests/conftest.py): jax reads that setting
when it is imported, and its caches keep what was compiled under it. So this module runs in a
process of its own, with optimisations on and 8 fake CPU devices, and prints one JSON object:
for each preset, what it measured.

  XLA_FLAGS=--xla_force_host_platform_device_count=8 python -m tests.e2e.optimised_checks
"""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from configs import default
from mobius_jax.models import MaskedLM, ModelConfig
from mobius_jax.sharding import make_mesh, use_mesh
from train.core import objectives, optim, partitioning
from train.core import state as train_state
from train.data.tokenizer import SPECIAL_TOKENS

PRESETS = ("bert", "mobius_bert")
# The train step on the mesh for the model with the most partitioned parts only (compiling it
# with optimisations costs ~20 s per mesh); tests/e2e checks both models' steps unoptimised.
TRAIN_PRESETS = ("mobius_bert",)
VOCAB, BATCH, LENGTH, STEPS = 64, 8, 16, 3  # vocabulary and batch divisible by the mesh axes


def model(preset: str, **overrides) -> MaskedLM:
  return MaskedLM(ModelConfig.preset(f"{preset}-tiny", vocab_size=VOCAB, **overrides))


def batch() -> dict:
  """Ordinary token ids; row i has i padding tokens at its end."""
  ids = jax.random.randint(jax.random.key(1), (BATCH, LENGTH), len(SPECIAL_TOKENS), VOCAB)
  mask = jnp.arange(LENGTH) < jnp.arange(LENGTH, LENGTH - BATCH, -1)[:, None]
  return {"input_ids": jnp.where(mask, ids, 0).astype(jnp.int32), "attention_mask": mask}


def meshes():
  """(one device, a 2 × 2 × 2 mesh of all 8)."""
  return make_mesh(1, 1, 1, devices=jax.devices()[:1]), make_mesh(data=2, fsdp=2, tensor=2)


def init(net: MaskedLM, mesh):
  """Parameters initialised straight into their shardings on `mesh`."""
  init_fn = lambda rng: net.init(rng, batch()["input_ids"])["params"]  # noqa: E731
  return partitioning.sharded_init(init_fn, mesh, jax.random.key(0))[0]


def mlm_loss(net: MaskedLM, params, inputs):
  """(mean cross-entropy of each real token's logits against the token, the logits)."""
  ids, mask = inputs["input_ids"], inputs["attention_mask"]
  logits = net.apply({"params": params}, ids, attention_mask=mask)
  losses = optax.softmax_cross_entropy_with_integer_labels(logits, ids)
  return (losses * mask).sum() / mask.sum(), logits


def on_mesh(fn, mesh, params):
  """`fn(params, batch)` jitted on `mesh`, the batch split as the training loop splits it."""
  inputs = jax.device_put(batch(), partitioning.batch_sharding(mesh))
  with use_mesh(mesh):
    return jax.device_get(jax.jit(fn)(params, inputs))


def largest_difference(a, b) -> float:
  differences = jax.tree.map(lambda x, y: np.abs(x - y).max(), a, b)
  return float(max(jax.tree.leaves(differences)))


def forward_and_gradients(preset: str) -> dict:
  """On the 2 × 2 × 2 mesh against one device, from the same parameters: the loss, logits and
  gradients; and on one device, bfloat16 logits against float32 ones."""
  net, (one, eight) = model(preset), meshes()
  params = init(net, eight)
  host = jax.device_get(params)
  forward = functools.partial(mlm_loss, net)
  grad = jax.grad(lambda params, inputs: forward(params, inputs)[0])
  (loss, logits), (one_loss, one_logits) = (
    on_mesh(forward, eight, params),
    on_mesh(forward, one, host),
  )
  grads, one_grads = on_mesh(grad, eight, params), on_mesh(grad, one, host)
  _, half = on_mesh(functools.partial(mlm_loss, model(preset, dtype="bfloat16")), one, host)
  assert half.dtype == jnp.bfloat16
  return {
    "sharded loss": float(abs(loss - one_loss)),
    "sharded logits": largest_difference(logits, one_logits),
    "sharded gradients, relative to the largest": largest_difference(grads, one_grads)
    / float(max(np.abs(g).max() for g in jax.tree.leaves(one_grads))),
    "bfloat16 logits, in float32 logits' std": float(
      np.abs(half.astype(np.float32) - one_logits).max() / one_logits.std()
    ),
  }


def train_losses(preset: str, mesh) -> list[float]:
  """The losses of `STEPS` train steps (masking, dropout, AdamW) jitted as the loop does."""
  net = model(preset)
  optimizer_config = default.get_config()
  optimizer_config.optimizer.warmup_ratio = 0.0  # else the first step's learning rate is 0
  optimizer_config.optimizer.learning_rate = 1e-3
  state, shardings = partitioning.sharded_init(
    train_state.init_fn(net, optim.make_optimizer(optimizer_config), LENGTH),
    mesh,
    jax.random.key(0),
  )
  masking = dict(
    rate=0.15,
    max_predictions=objectives.max_predictions(0.15, LENGTH),
    mask_id=SPECIAL_TOKENS.index("[MASK]"),
    special_ids=tuple(range(len(SPECIAL_TOKENS))),
    vocab_size=VOCAB,
  )
  replicated = NamedSharding(mesh, P())
  step = jax.jit(
    functools.partial(train_state.train_step, objective=objectives.MaskedLMObjective(net, masking)),
    in_shardings=(shardings, partitioning.batch_sharding(mesh), replicated),
    out_shardings=(shardings, replicated),
    donate_argnums=0,
  )
  inputs = jax.device_put({"input_ids": batch()["input_ids"]}, partitioning.batch_sharding(mesh))
  losses = []
  with use_mesh(mesh):
    for i in range(STEPS):
      state, metrics = step(state, inputs, jax.random.fold_in(jax.random.key(2), i))
      losses.append(float(metrics["loss"]))
  return losses


def main():
  results = {
    "optimisations off": bool(jax.config.read("jax_disable_most_optimizations")),
    "devices": jax.device_count(),
  }
  for preset in PRESETS:
    results[preset] = forward_and_gradients(preset)
  for preset in TRAIN_PRESETS:
    results[preset]["train losses"] = [train_losses(preset, mesh) for mesh in meshes()]
  print(json.dumps(results))


if __name__ == "__main__":
  main()
