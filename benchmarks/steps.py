"""The masked-LM train steps that the benchmark scripts build, compile and time: no script.

`build` makes one of `VARIANTS` (ours through `train.core.state.train_step`, its ablations, and
Hugging Face's FlaxBert); `compile_runner` compiles it; `random_batch` feeds it; `model_flops`
counts its model FLOPs; `compile_step` plans it for a mesh from abstract inputs, compiled and
never run. `train_step.py` describes the variants.

They live here, not in the scripts, so that no script imports another: each script defines its
absl flags at module level, and two scripts' flags of one name must not meet.
"""

from __future__ import annotations

import functools
import time

import common  # noqa: F401  (first: puts the repository root on sys.path)
import jax
import jax.numpy as jnp
import optax
from flax import traverse_util

from configs import default as default_config
from mobius_jax.models import MaskedLM, ModelConfig
from mobius_jax.models.params import count_params
from mobius_jax.ops import take_tokens
from mobius_jax.sharding import use_mesh
from train.core import objectives, optim, partitioning, plan
from train.core import state as train_state
from train.data.tokenizer import PAD_ID, SPECIAL_TOKENS

VOCAB = 30_522
# 30,522 rounded up to a multiple of 64, as the training loop does: the tensor axis splits the
# word table evenly (`scaling.py`, `pod.py`).
PADDED_VOCAB = 30_528
VARIANTS = ("hf bert", "bert", "bert, full last layer", "bert, all logits", "möbius bert")


def optimizer_config():
  """The default config's optimiser; a long schedule, so the rate is not zero while timed."""
  config = default_config.get_config()
  config.num_train_steps = 10_000
  return config


def masking(length: int) -> dict:
  return dict(
    rate=0.15,
    max_predictions=objectives.max_predictions(0.15, length),
    mask_id=SPECIAL_TOKENS.index("[MASK]"),
    special_ids=tuple(range(len(SPECIAL_TOKENS))),
    vocab_size=VOCAB,
  )


def at_every_position(ids, positions, labels, weights):
  """The masked positions' `[B, P]` labels and weights spread to `[B, L]`: 0 elsewhere."""
  rows = jnp.arange(ids.shape[0])[:, None]
  return (
    jnp.zeros_like(ids).at[rows, positions].set(labels),
    jnp.zeros(ids.shape).at[rows, positions].set(weights),
  )


class AllPositionsObjective(objectives.MaskedLMObjective):
  """HF's loss on our model: the logits at all B × L positions, the cross-entropy at every one,
  weighted 0 where nothing was masked (as `run_mlm_flax.py`): the same work as HF's step."""

  def loss(self, params, batch, rng, *, train: bool, diagnose: bool = False):
    ids, positions = batch["input_ids"], batch["positions"]
    logits = self.model.apply(
      {"params": params},
      ids,
      attention_mask=ids != PAD_ID,
      deterministic=not train,
      rngs={"dropout": rng},
    )  # [B, L, V]: no masked_positions
    labels, weights = at_every_position(ids, positions, batch["labels"], batch["weights"])
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    return (losses * weights).sum(), {"count": weights.sum()}


class FullLastLayerMaskedLM(MaskedLM):
  """Our `MaskedLM` with the last layer at every position, the logits at the masked ones."""

  def __call__(self, input_ids, *, masked_positions=None, deterministic=True, **kwargs):
    x = self.backbone(input_ids, deterministic=deterministic, **kwargs).sequence
    if masked_positions is not None:
      x = take_tokens(x, masked_positions)
    return self.mlm_head(x, self.backbone.embeddings.attend)


ABLATIONS = {
  "bert, full last layer": (FullLastLayerMaskedLM, objectives.MaskedLMObjective),
  "bert, all logits": (MaskedLM, AllPositionsObjective),
}


def our_step(
  preset: str,
  length: int,
  mesh,
  *,
  model_class=MaskedLM,
  objective_class=objectives.MaskedLMObjective,
  **overrides,
):
  """(jitted train step, initial state, parameter count) of our model on `mesh`."""
  model_config = ModelConfig.preset(preset, **{"vocab_size": VOCAB, **overrides})
  model = model_class(model_config)
  optimizer = optim.make_optimizer(optimizer_config())
  state, shardings = partitioning.sharded_init(
    train_state.init_fn(model, optimizer, length), mesh, jax.random.key(0)
  )
  objective = objective_class(model, masking(length))
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  step = jax.jit(
    functools.partial(train_state.train_step, objective=objective),
    in_shardings=(shardings, partitioning.batch_sharding(mesh), replicated),
    out_shardings=(shardings, replicated),
    donate_argnums=0,
  )
  return step, state, count_params(state.params)


def hf_step(size: str, length: int, dropout: float = 0.1):
  """(jitted train step, initial state, parameter count) of `FlaxBertForMaskedLM`."""
  from transformers import BertConfig, FlaxBertForMaskedLM

  ours = ModelConfig.preset(f"bert-{size}", vocab_size=VOCAB)
  hf_config = BertConfig(
    vocab_size=VOCAB,
    hidden_size=ours.hidden_size,
    num_hidden_layers=ours.num_layers,
    num_attention_heads=ours.num_heads,
    intermediate_size=ours.intermediate_size,
    max_position_embeddings=ours.max_position_embeddings,
    hidden_dropout_prob=dropout,
    attention_probs_dropout_prob=dropout,
  )
  model = FlaxBertForMaskedLM(hf_config, seed=0)
  state = train_state.TrainState.create(
    apply_fn=model.__call__,
    params=model.params,
    tx=optim.make_optimizer(optimizer_config()),
    rng=jax.random.key(0),
  )
  mask_kwargs = masking(length)

  def step(state, batch, rng):
    mask_rng, dropout_rng = jax.random.split(rng)
    masked = objectives.mask_tokens(mask_rng, batch["input_ids"], **mask_kwargs)
    ids, positions, labels, weights = masked
    # run_mlm_flax.py's loss: labels at every position, weight 0 where nothing was masked.
    all_labels, all_weights = at_every_position(ids, positions, labels, weights)

    def loss_fn(params):
      logits = model(
        ids,
        attention_mask=ids != PAD_ID,
        params=params,
        dropout_rng=dropout_rng,
        train=True,
      ).logits
      losses = optax.softmax_cross_entropy_with_integer_labels(logits, all_labels)
      return (losses * all_weights).sum() / all_weights.sum()

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    return state.apply_gradients(grads=grads), {"loss": loss}

  return jax.jit(step, donate_argnums=0), state, count_params(state.params)


def build(name: str, size: str, length: int, mesh, dropout: float = 0.1):
  """(jitted train step, initial state, parameter count) of one of `VARIANTS`."""
  if name == "hf bert":
    return hf_step(size, length, dropout)
  rates = {"hidden_dropout": dropout, "attention_dropout": dropout}
  if name == "möbius bert":
    return our_step(f"mobius_bert-{size}", length, mesh, **rates)
  model_class, objective_class = ABLATIONS.get(name, (MaskedLM, objectives.MaskedLMObjective))
  return our_step(
    f"bert-{size}",
    length,
    mesh,
    model_class=model_class,
    objective_class=objective_class,
    **rates,
  )


class Runner:
  """Holds a compiled step's state; each call runs one step and blocks until it is done."""

  def __init__(self, compiled, state, batch, mesh):
    self.compiled, self.state, self.batch, self.mesh = compiled, state, batch, mesh
    self.flops = compiled.cost_analysis()["flops"]  # XLA's count for one step
    self.rng, self.steps, self.losses = jax.random.key(1), 0, []

  def __call__(self):
    with use_mesh(self.mesh):
      self.state, metrics = self.compiled(
        self.state, self.batch, jax.random.fold_in(self.rng, self.steps)
      )
    self.steps += 1
    self.losses.append(metrics["loss"])
    jax.block_until_ready(self.state)


def compile_runner(step, state, batch, mesh) -> tuple[Runner, float]:
  """The step compiled for these arguments, and the seconds the compilation took."""
  start = time.perf_counter()
  with use_mesh(mesh):
    compiled = step.lower(state, batch, jax.random.key(1)).compile()
  return Runner(compiled, state, batch, mesh), time.perf_counter() - start


def random_batch(batch: int, length: int, seed: int = 0) -> dict:
  """Token ids drawn uniformly from the ordinary (non-special) tokens: no padding."""
  num_special = len(SPECIAL_TOKENS)
  ids = jax.random.randint(jax.random.key(seed), (batch, length), num_special, VOCAB)
  return {"input_ids": ids.astype(jnp.int32)}


def model_flops(preset: str, params, batch: int, length: int) -> float:
  """Model FLOPs of one train step (forward + backward); `gpu.py`'s docstring says what counts."""
  config = ModelConfig.preset(preset, vocab_size=VOCAB)
  tokens = batch * length
  masked = batch * masking(length)["max_predictions"]
  last = f"layer_{config.num_layers - 1}"

  def rows(path) -> int:  # how many tokens a weight is applied to
    at_masked = "mlm_head" in path or (last in path and not {"key", "value"} & set(path))
    return masked if at_masked else tokens

  flat = traverse_util.flatten_dict(params)
  dense = sum(v.size * rows(k) for k, v in flat.items() if "embeddings" not in k)
  queries = [tokens] * (config.num_layers - 1) + [masked]
  head_widths = [config.head_dim * (2 if kind == "M" else 1) for kind in config.layer_kinds]
  attention = sum(
    12 * q * length * config.num_heads * width
    for q, width in zip(queries, head_widths, strict=True)
  )
  decoder = 6 * config.hidden_size * config.vocab_size * masked
  return 6 * dense + decoder + attention


def compile_step(preset: str, mesh, batch: int, length: int, dtype: str) -> dict:
  """Lowers and compiles our train step (vocabulary `PADDED_VOCAB`) for abstract inputs on
  `mesh`, nothing allocated; returns what `pod.py`'s tables show."""
  config = ModelConfig.preset(preset, vocab_size=PADDED_VOCAB, dtype=dtype)
  model = MaskedLM(config)
  optimizer = optim.make_optimizer(optimizer_config())
  init = train_state.init_fn(model, optimizer, length)
  state, shardings = partitioning.sharded_abstract(init, mesh, jax.random.key(0))
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  objective = objectives.MaskedLMObjective(model, {**masking(length), "vocab_size": PADDED_VOCAB})
  step = jax.jit(
    functools.partial(train_state.train_step, objective=objective),
    in_shardings=(shardings, partitioning.batch_sharding(mesh), replicated),
    out_shardings=(shardings, replicated),
    donate_argnums=0,
  )
  ids = jax.ShapeDtypeStruct((batch, length), jnp.int32, sharding=partitioning.batch_sharding(mesh))
  rng = jax.ShapeDtypeStruct((), jax.random.key(0).dtype, sharding=replicated)
  start = time.perf_counter()
  with use_mesh(mesh):
    lowered = step.lower(state, {"input_ids": ids}, rng)
    lower_s = time.perf_counter() - start
    compiled = lowered.compile()
  compile_s = time.perf_counter() - start - lower_s
  memory = compiled.memory_analysis()
  return dict(
    preset=preset,
    mesh=dict(mesh.shape),
    devices=mesh.size,
    params=count_params(state.params),
    param_bytes=plan.per_device_bytes(state.params),
    opt_bytes=plan.per_device_bytes(state.opt_state),
    argument_bytes=memory.argument_size_in_bytes,
    output_bytes=memory.output_size_in_bytes,
    alias_bytes=memory.alias_size_in_bytes,
    temp_bytes=memory.temp_size_in_bytes,
    collectives=plan.collectives(compiled.as_text()),
    flops=compiled.cost_analysis()["flops"],
    # model_flops takes vocabulary 30,522 for the decoder term: 1e-5 of the total off.
    model_flops=model_flops(preset, state.params, batch, length),
    lower_s=lower_s,
    compile_s=compile_s,
  )
