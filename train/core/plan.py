"""What a compiled, partitioned program asks of each device, and the plan of a train step for a
TPU topology compiled by the TPU compiler itself.

`per_device_bytes` counts what one device holds of a sharded tree; `collectives` reads the
collectives out of a compiled program's HLO text. With `partitioning.sharded_abstract` they plan
a train step for a mesh from abstract inputs, nothing allocated (`benchmarks/pod.py`, on fake CPU
devices).

The TPU plan (`python -m train.plan`) compiles a config's real train step for a TPU slice on a
machine without a TPU: with libtpu installed (the `[tpu]` extra), `topology.get_topology` gives
a slice's compile-only devices, `topology.topology_mesh` the config's mesh over them,
`compile_train_step` the compiler's answers per chip (buffers, FLOPs, its estimated step time
`optimal_seconds`, collectives) or its refusal for lack of HBM, `search.largest_fitting` the
largest batch it accepts (bisection), and `estimates` what its estimate implies (MFU, tokens/s,
chip-hours).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import re
import time

import jax
import jax.numpy as jnp
import ml_collections
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from mobius_jax.sharding import use_mesh
from train.core import checks, objectives, optim, partitioning
from train.core import state as train_state
from train.core.topology import Chip
from train.data.tokenizer import SPECIAL_TOKENS

COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")
# Bytes per element of HLO element types (sub-byte types count as one byte).
DTYPE_BYTES = {
  "pred": 1,
  **dict.fromkeys(("s8", "u8", "s4", "u4", "f8e4m3fn", "f8e5m2", "f8e4m3", "f8e5m2fnuz"), 1),
  **dict.fromkeys(("s16", "u16", "f16", "bf16"), 2),
  **dict.fromkeys(("s32", "u32", "f32"), 4),
  **dict.fromkeys(("s64", "u64", "f64", "c64"), 8),
  "c128": 16,
}
# `name = shape kind(` in HLO text; `-start` and `-done` are the halves of async collectives.
_COLLECTIVE = re.compile(
  r"=\s*(?P<shape>.*?)\s+(?P<kind>" + "|".join(COLLECTIVES) + r")(?P<half>-start|-done)?\("
)
_ARRAY = re.compile(r"\b([a-z][a-z0-9]*)\[([\d,]*)\]")


def per_device_bytes(tree) -> int:
  """Bytes that one device holds of `tree`'s arrays: each leaf's shard, not the global array.

  Leaves are `jax.Array`s or `jax.ShapeDtypeStruct`s with a sharding. Shardings here are
  `NamedSharding`s, whose shards all have one shape.
  """
  return sum(
    math.prod(leaf.sharding.shard_shape(leaf.shape)) * leaf.dtype.itemsize
    for leaf in jax.tree.leaves(tree)
  )


def collectives(hlo: str) -> dict[str, tuple[int, int]]:
  """(count, bytes of their results) of each kind of collective in a compiled HLO module.

  The module is one device's program, so shapes and bytes are per device. An async pair
  (`-start`, `-done`) counts once, by its `-done`, whose result is the collective's output.
  """
  found = dict.fromkeys(COLLECTIVES, (0, 0))
  for match in _COLLECTIVE.finditer(hlo):
    if match["half"] == "-start":
      continue
    size = sum(
      math.prod(int(d) for d in dims.split(",") if d) * DTYPE_BYTES[dtype]
      for dtype, dims in _ARRAY.findall(match["shape"])
    )
    count, total = found[match["kind"]]
    found[match["kind"]] = (count + 1, total + size)
  return found


# ---------------------------------------------------------------------------------------------
# The plan for a TPU topology: the config's train step compiled by the TPU compiler (libtpu) for
# compile-only devices, on a machine without a TPU (as MaxText's `train_compile.py` does).

_CONCAT_BITCAST = re.compile(r'custom_call_target="ConcatBitcast"')


def plan_vocab_size(config: ml_collections.ConfigDict) -> tuple[int, int]:
  """(tokenizer vocabulary, the model's: rounded up to `vocab_multiple`) without a tokenizer.

  The tokenizer's size is `config.tokenizer.vocab_size`, or with a `vocab_file` (set or still a
  placeholder) bert-base-uncased's 30,522, the vocabulary the paper's configs load.
  """
  tokens = config.tokenizer.vocab_size
  if config.tokenizer.vocab_file or config.tokenizer.vocab_file is None:
    tokens = BERT_VOCAB_SIZE
  multiple = config.vocab_multiple
  return tokens, -(-tokens // multiple) * multiple


BERT_VOCAB_SIZE = 30_522  # bert-base-uncased's vocab.txt


def masking_kwargs(config: ml_collections.ConfigDict, tokens: int) -> dict:
  """`mask_tokens`' keyword arguments for the config's rows, as the loop builds them, with the
  ids of our trained vocabularies' special tokens (`SPECIAL_TOKENS`); another vocabulary's
  ids change none of the compiled program's shapes."""
  return dict(
    rate=config.mask_rate,
    max_predictions=objectives.max_predictions(config.mask_rate, config.max_len),
    mask_id=SPECIAL_TOKENS.index("[MASK]"),
    special_ids=tuple(range(len(SPECIAL_TOKENS))),
    vocab_size=tokens,
  )


@dataclasses.dataclass
class StepPlan:
  """What the TPU compiler says of one train step; `fits` False: it refused it for HBM.

  Bytes are per chip. `memory` holds `memory_analysis()`'s sizes (argument, output, alias,
  temp, code) and `total` = argument + output − alias + temp + code; `cost` holds
  `cost_analysis()`'s `flops` (one chip's), `optimal_seconds` (the compiler's estimate of the
  step's time) and `bytes_accessed`.
  """

  batch_size: int
  fits: bool
  params: int = 0
  param_bytes: int = 0
  opt_bytes: int = 0
  memory: dict = dataclasses.field(default_factory=dict)
  cost: dict = dataclasses.field(default_factory=dict)
  collectives: dict = dataclasses.field(default_factory=dict)
  error: str = ""  # the compiler's RESOURCE_EXHAUSTED message when it does not fit
  compile_s: float = 0.0


def memory_summary(stats) -> dict[str, int]:
  """`compiled.memory_analysis()` as a dict, with `total`: what one chip's HBM holds."""
  memory = {
    "argument": stats.argument_size_in_bytes,
    "output": stats.output_size_in_bytes,
    "alias": stats.alias_size_in_bytes,
    "temp": stats.temp_size_in_bytes,
    "code": stats.generated_code_size_in_bytes,
  }
  memory["total"] = (
    memory["argument"] + memory["output"] - memory["alias"] + memory["temp"] + memory["code"]
  )
  return memory


def cost_summary(cost: dict | list | None, hlo: str = "") -> dict[str, float]:
  """`compiled.cost_analysis()`'s FLOPs, estimated seconds and bytes accessed, per chip.

  `optimal_seconds` is the TPU compiler's estimate of the program's time (absent elsewhere:
  0). This libtpu (0.0.42.1) counts −1 s for each `ConcatBitcast` custom call, which its memory
  space assignment makes of sliced prefetches, so a train step's raw value is often negative:
  given the compiled `hlo` text, the estimate adds those back (`optimal_seconds_raw` keeps the
  raw value, `concat_bitcasts` the count). Checked on bert-tiny on v5e:2x2: −2.99938 s raw with
  3 of them, 0.00062 s corrected; the same step compiled without sliced prefetch
  (`xla_tpu_sliced_prefetch_max_slices=0`) has none and an estimate of 0.00065 s.
  """
  if isinstance(cost, list):  # older jax: one dict per program
    cost = cost[0] if cost else {}
  cost = cost or {}
  raw = float(cost.get("optimal_seconds", 0.0))
  sentinels = len(_CONCAT_BITCAST.findall(hlo))
  return {
    "flops": float(cost.get("flops", 0.0)),
    "optimal_seconds": max(raw + sentinels, 0.0) if raw else 0.0,
    "optimal_seconds_raw": raw,
    "concat_bitcasts": sentinels,
    "bytes_accessed": float(cost.get("bytes accessed", 0.0)),
  }


def build_train_step(config: ml_collections.ConfigDict, mesh: Mesh):
  """(jitted train step, abstract state, abstract batch, rng, rules) of the config's
  masked-LM pretraining on `mesh`, as `train.core.loop` jits it; nothing allocated."""
  from train.core import experiment  # imports the data stack; only the plan needs it here

  tokens, vocab = plan_vocab_size(config)
  model, model_config = experiment.build_model(config, vocab, None)
  checks.check_fit(config, model_config, tokens, mesh)
  rules = partitioning.axis_rules(config)
  optimizer = optim.make_optimizer(config)
  init = train_state.init_fn(model, optimizer, config.max_len)
  state, shardings = partitioning.sharded_abstract(
    init, mesh, jax.random.key(config.seed), rules=rules
  )
  objective = objectives.MaskedLMObjective(model, masking_kwargs(config, tokens))
  replicated = NamedSharding(mesh, P())
  batch_sharding = partitioning.batch_sharding(mesh)
  step = jax.jit(
    functools.partial(
      train_state.train_step, objective=objective, accum_steps=config.grad_accum_steps
    ),
    in_shardings=(shardings, batch_sharding, replicated),
    out_shardings=(shardings, replicated),
    donate_argnums=0,
  )
  ids = jax.ShapeDtypeStruct(
    (config.batch_size, config.max_len), jnp.int32, sharding=batch_sharding
  )
  rng = jax.ShapeDtypeStruct((), jax.random.key(0).dtype, sharding=replicated)
  return step, state, {"input_ids": ids}, rng, rules


def check_plan_config(config: ml_collections.ConfigDict) -> None:
  """The loop's checks of keys and values (`checks.check_config`) less the vocabulary file,
  which the plan does not read, and the model's (`ModelConfig`'s validation, e.g. splash
  attention with attention dropout); only masked-LM pretraining is planned.

  Raises:
    ValueError: naming the key or field and what is allowed.
  """
  from train.core import experiment

  if config.mode != "pretrain":
    raise ValueError(
      f"config.mode={config.mode!r}: the plan compiles the masked-LM pretraining step; use a "
      "pretraining config (mode 'pretrain')."
    )
  probe = copy.deepcopy(config)
  with probe.unlocked():
    probe.tokenizer.vocab_file = ""
  checks.check_config(probe)
  experiment.build_model(config, plan_vocab_size(config)[1], None)


def compile_train_step(
  config: ml_collections.ConfigDict, mesh: Mesh, batch_size: int | None = None
) -> StepPlan:
  """The config's train step (batch `batch_size`, default the config's) compiled for `mesh`'s
  devices from abstract inputs: what the compiler says of it per chip, or `fits=False` where it
  refuses the program for lack of HBM (a TPU compile's RESOURCE_EXHAUSTED)."""
  if batch_size is not None:
    config = copy.deepcopy(config)
    config.batch_size = batch_size
  step, state, batch, rng, rules = build_train_step(config, mesh)
  start = time.perf_counter()
  plan = StepPlan(
    batch_size=config.batch_size,
    fits=True,
    params=sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(state.params)),
    param_bytes=per_device_bytes(state.params),
    opt_bytes=per_device_bytes(state.opt_state),
  )
  with use_mesh(mesh, rules):
    lowered = step.lower(state, batch, rng)
  try:
    compiled = lowered.compile()
  except RuntimeError as error:
    if "RESOURCE_EXHAUSTED" not in str(error):
      raise
    plan.fits, plan.error = False, str(error).splitlines()[0]
    plan.compile_s = time.perf_counter() - start
    return plan
  plan.compile_s = time.perf_counter() - start
  plan.memory = memory_summary(compiled.memory_analysis())
  hlo = compiled.as_text()
  plan.cost = cost_summary(compiled.cost_analysis(), hlo)
  plan.collectives = collectives(hlo)
  return plan


def kernel_attention_flops(model_config, batch: int, length: int, predictions: int) -> float:
  """Training FLOPs (forward and backward) of the attention that runs on the splash kernel,
  whose custom call XLA's FLOP count leaves out: 12 · queries · keys · heads · width per layer
  (4 forward, 8 backward), the width 2C of a Möbius layer's fused heads, the last layer's
  queries the masked positions. 0 unless `attention_implementation` is "splash"; Möbius layers
  with magnitude scores take the einsum path (counted by XLA) and are left out."""
  if model_config.attention_implementation != "splash":
    return 0.0
  flops = 0.0
  kinds = model_config.layer_kinds
  for index, kind in enumerate(kinds):
    if kind == "M" and model_config.mobius_score == "magnitude":
      continue
    queries = batch * (predictions if index == len(kinds) - 1 else length)
    width = model_config.head_dim * (2 if kind == "M" else 1)
    flops += 12 * queries * length * model_config.num_heads * width
  return flops


def estimates(
  plan: StepPlan,
  chip: Chip,
  chips: int,
  tokens_per_step: int,
  steps: int,
  extra_flops: float = 0.0,
) -> dict:
  """What the compiler's estimate implies (derived, not the compiler's): MFU (FLOPs per chip
  over its estimated seconds, against the chip's peak), tokens/s, and the chip-hours of `steps`
  steps at that estimate and at 50 % MFU. The FLOPs are XLA's per chip plus `extra_flops` (the
  whole step's FLOPs that XLA does not count, e.g. `kernel_attention_flops`, spread over the
  chips)."""
  flops = plan.cost.get("flops", 0.0) + extra_flops / chips
  seconds = plan.cost.get("optimal_seconds", 0.0)
  out = {"flops_per_chip": flops, "mfu": None, "tokens_per_s": None, "hours": None}
  out["chip_hours"] = None
  if seconds > 0:
    out.update(
      mfu=flops / seconds / chip.peak_flops,
      tokens_per_s=tokens_per_step / seconds,
      hours=steps * seconds / 3600,
      chip_hours=steps * seconds * chips / 3600,
    )
  hours_at_half = steps * flops / (0.5 * chip.peak_flops) / 3600
  out.update(hours_at_50=hours_at_half, chip_hours_at_50=hours_at_half * chips)
  return out
