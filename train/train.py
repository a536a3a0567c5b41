"""Masked-LM pretraining and GLUE-style fine-tuning: `train_and_evaluate(config, workdir)`.

The step functions are pure: `train_step(state, batch, rng) -> (state, metrics)` and
`eval_step(state, batch) -> metrics`, jitted with the state's and the batch's shardings over a
device mesh, the state donated. Dimension letters: B batch, L length, P masked positions per
row, V vocabulary.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import math
import pathlib
import signal
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import serialization, traverse_util
from flax.training import train_state
from tqdm import tqdm

from configs import default as default_config
from mobius_jax.models import MaskedLM, ModelConfig, SequenceClassifier
from mobius_jax.models import hf as hf_convert
from mobius_jax.models.params import count_params
from mobius_jax.sharding import DEFAULT_RULES
from train import input_pipeline, metrics, partitioning, tasks
from train.checkpointing import Checkpointer

MODES = ("pretrain", "finetune")
# Never decayed: biases, LayerNorm and per-dimension scales, and Möbius coefficients (decay
# would pull every map towards the degenerate all-zero matrix).
NO_DECAY = ("bias", "bias_real", "bias_imag", "scale", "coefficients")


class TrainState(train_state.TrainState):
  rng: jax.Array  # base key of the masking and dropout streams; step s uses fold_in(rng, s)


class NonFiniteLossError(FloatingPointError):
  """The loss or the gradients became NaN or infinite; the last good checkpoint is kept."""


# -------------------------------------------------------------------------------- optimiser


def learning_rate_schedule(config: ml_collections.ConfigDict) -> optax.Schedule:
  """Linear warm-up over `warmup_ratio` of the steps, then linear or cosine decay to 0."""
  opt, steps = config.optimizer, config.num_train_steps
  warmup = int(opt.warmup_ratio * steps)
  if opt.schedule == "linear":
    decay = optax.linear_schedule(opt.learning_rate, 0.0, max(steps - warmup, 1))
  elif opt.schedule == "cosine":
    decay = optax.cosine_decay_schedule(opt.learning_rate, max(steps - warmup, 1))
  else:
    raise ValueError(f"optimizer.schedule={opt.schedule!r}: use 'linear' or 'cosine'.")
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


# ---------------------------------------------------------------------------------- masking


def max_predictions(rate: float, length: int) -> int:
  """The masked positions' buffer size P for rows of `length` tokens: ⌈rate · length⌉, even.

  Even because the last layer's attention then has P queries, and cuDNN's fused attention
  refuses an odd query length when it trains with a mask.
  """
  return min(length, 2 * math.ceil(rate * length / 2))


def mask_tokens(
  rng: jax.Array,
  input_ids: jax.Array,
  *,
  rate: float,
  max_predictions: int,
  mask_id: int,
  vocab_size: int,
  num_special: int,
):
  """BERT's masking: round(rate · n) of each row's n ordinary tokens, chosen uniformly.

  Of the chosen positions 80 % become [MASK], 10 % a random ordinary token, 10 % stay. Token
  ids below `num_special` ([PAD], [CLS], [SEP], …) are never chosen.

  Args:
    input_ids: int `[B, L]`.
    max_predictions: P, the most positions chosen per row.
    vocab_size: the tokenizer's vocabulary size (random replacements are drawn below it).

  Returns:
    (masked input_ids `[B, L]`, positions `[B, P]`, labels `[B, P]`, weights `[B, P]`: 1 at
    the chosen positions, 0 where a row has fewer than P).
  """
  choose, kind, replacement = jax.random.split(rng, 3)
  eligible = input_ids >= num_special
  scores = jnp.where(eligible, jax.random.uniform(choose, input_ids.shape), -1.0)
  _, positions = jax.lax.top_k(scores, max_predictions)  # [B, P]
  count = jnp.round(rate * eligible.sum(axis=1, keepdims=True))
  weights = (jnp.arange(max_predictions) < count).astype(jnp.float32)
  labels = jnp.take_along_axis(input_ids, positions, axis=1)
  draw = jax.random.uniform(kind, positions.shape)
  random_tokens = jax.random.randint(replacement, positions.shape, num_special, vocab_size)
  new = jnp.where(draw < 0.8, mask_id, jnp.where(draw < 0.9, random_tokens, labels))
  new = jnp.where(weights > 0, new, labels)
  rows = jnp.arange(input_ids.shape[0])[:, None]
  return input_ids.at[rows, positions].set(new), positions, labels, weights


# ----------------------------------------------------------------------------------- losses


@dataclasses.dataclass(frozen=True)
class Objective:
  """How a batch becomes (sum of losses, sums for the metrics); weights count examples."""

  model: nn.Module
  mode: str
  is_regression: bool = False
  masking: dict | None = None  # mask_tokens' keyword arguments, for pretraining

  def prepare(self, batch, rng):
    """Pretraining: masks the whole batch (before any split into micro-batches)."""
    if self.mode != "pretrain":
      return batch
    ids, positions, labels, weights = mask_tokens(rng, batch["input_ids"], **self.masking)
    return {"input_ids": ids, "positions": positions, "labels": labels, "weights": weights}

  def __call__(self, params, batch, rng, *, train: bool):
    """Returns (loss_sum, sums) for a `prepare`d batch; sums hold `count` and `correct`."""
    rngs = {"dropout": rng} if train else {}
    variables = {"params": params}
    if self.mode == "pretrain":
      ids, weights = batch["input_ids"], batch["weights"]
      logits = self.model.apply(
        variables,
        ids,
        attention_mask=ids != input_pipeline.PAD_ID,
        masked_positions=batch["positions"],
        deterministic=not train,
        rngs=rngs,
      ).astype(jnp.float32)
      losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["labels"])
      correct = (jnp.argmax(logits, -1) == batch["labels"]) * weights
      sums = {"count": weights.sum(), "correct": correct.sum()}
      return (losses * weights).sum(), sums
    logits = self.model.apply(
      variables,
      batch["input_ids"],
      attention_mask=batch["input_ids"] != input_pipeline.PAD_ID,
      token_type_ids=batch["token_type_ids"],
      deterministic=not train,
      rngs=rngs,
    ).astype(jnp.float32)
    weights = batch.get("weight", jnp.ones(logits.shape[0]))
    if self.is_regression:
      predictions = logits[:, 0]
      losses = (predictions - batch["label"]) ** 2
      sums = {"count": weights.sum()}
    else:
      predictions = jnp.argmax(logits, -1)
      losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
      sums = {"count": weights.sum(), "correct": ((predictions == batch["label"]) * weights).sum()}
    return (losses * weights).sum(), {**sums, "predictions": predictions}


def _finish(loss_sum, sums) -> dict:
  """Sums → means: loss (and accuracy where there is one)."""
  count = jnp.maximum(sums["count"], 1.0)
  out = {"loss": loss_sum / count}
  if "correct" in sums:
    out["accuracy"] = sums["correct"] / count
  return out


# ------------------------------------------------------------------------------------ steps


def train_step(state: TrainState, batch, rng, *, objective: Objective, accum_steps: int = 1):
  """One optimiser step on `batch`, in `accum_steps` micro-batches if > 1 (same result).

  Returns:
    (new state, metrics: loss, accuracy, grad_norm, learning-rate-free).
  """

  def loss_and_grads(micro, rng):
    (loss_sum, sums), grads = jax.value_and_grad(
      lambda p: objective(p, micro, rng, train=True), has_aux=True
    )(state.params)
    sums = {k: v for k, v in sums.items() if k != "predictions"}
    return loss_sum, sums, grads

  mask_rng, rng = jax.random.split(rng)
  batch = objective.prepare(batch, mask_rng)
  if accum_steps == 1:
    loss_sum, sums, grads = loss_and_grads(batch, rng)
  else:
    micro = jax.tree.map(lambda x: x.reshape(accum_steps, -1, *x.shape[1:]), batch)
    rngs = jax.random.split(rng, accum_steps)

    def body(carry, inputs):
      loss_sum, sums, grads = loss_and_grads(*inputs)
      return jax.tree.map(jnp.add, carry, (loss_sum, sums, grads)), None

    zeros = jax.tree.map(
      jnp.zeros_like, jax.eval_shape(loss_and_grads, *jax.tree.map(lambda x: x[0], (micro, rngs)))
    )
    (loss_sum, sums, grads), _ = jax.lax.scan(body, zeros, (micro, rngs))
  # The objective sums over examples: the mean gradient divides by their number.
  grads = jax.tree.map(lambda g: g / jnp.maximum(sums["count"], 1.0), grads)
  state = state.apply_gradients(grads=grads)
  return state, {**_finish(loss_sum, sums), "grad_norm": optax.tree.norm(grads)}


def eval_step(state: TrainState, batch, *, objective: Objective, rng: jax.Array):
  """Sums of a batch's losses (and predictions for fine-tuning), no dropout, fixed masking."""
  loss_sum, sums = objective(state.params, objective.prepare(batch, rng), rng, train=False)
  return {"loss_sum": loss_sum, **sums}


# ------------------------------------------------------------------------------------- setup


def build_model(config, vocab_size: int, num_labels: int | None) -> tuple[nn.Module, ModelConfig]:
  """The model of `config.model` (a preset) or, with `init_from="hf:DIR"`, of DIR/config.json;
  `config.model_overrides` (e.g. a Möbius layout, to upcycle) applied to either."""
  overrides = {"dtype": config.dtype, **config.model_overrides.to_dict()}
  if config.init_from.startswith("hf:"):
    hf_config = json.loads((pathlib.Path(config.init_from[3:]) / "config.json").read_text())
    model_config = hf_convert.config_from_hf(hf_config, **overrides)
  else:
    model_config = ModelConfig.preset(config.model, vocab_size=vocab_size, **overrides)
  if num_labels is None:
    return MaskedLM(model_config), model_config
  return SequenceClassifier(model_config, num_labels), model_config


def _round_up(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


def _check_workdir(workdir: pathlib.Path) -> None:
  try:
    workdir.mkdir(parents=True, exist_ok=True)
    probe = workdir / ".write_test"
    probe.write_text("")
    probe.unlink()
  except OSError as error:
    raise PermissionError(
      f"Cannot write to the workdir {workdir} ({error.strerror}); pass a writable --workdir."
    ) from error


def _check_config(config) -> None:
  _check_keys(config, default_config.get_config())
  if config.mode not in MODES:
    raise ValueError(f"config.mode={config.mode!r}: use one of {MODES}.")
  if config.mode == "pretrain":
    tasks.get_corpus(config.corpus)
  else:
    tasks.get_task(config.task)
  if config.batch_size % config.grad_accum_steps:
    raise ValueError(
      f"batch_size={config.batch_size} must be a multiple of grad_accum_steps="
      f"{config.grad_accum_steps}."
    )


def _check_keys(config, reference, prefix: str = "") -> None:
  """Every key of `config` must be one of `configs/default.py`'s (catches typos)."""
  for key, value in config.items():
    name = f"{prefix}{key}"
    if key not in reference:
      close = difflib.get_close_matches(key, list(reference.keys()), n=1)
      hint = f" Did you mean {prefix}{close[0]!r}?" if close else ""
      raise ValueError(f"Unknown config key {name!r}.{hint} The keys are in configs/default.py.")
    if isinstance(value, ml_collections.ConfigDict) and key != "model_overrides":
      _check_keys(value, reference[key], prefix=f"{name}.")


@dataclasses.dataclass
class _Data:
  """What the loop needs of the data: training batches, evaluation splits, token counts."""

  train: object  # grain MapDataset of training batches
  eval_splits: dict[str, dict[str, np.ndarray]]
  tokens_per_batch: int


def _pretraining_data(config, corpus, tokenizer) -> _Data:
  if corpus.offline:
    train_rows = {
      "input_ids": input_pipeline.pretraining_rows(
        corpus, corpus.train_split, tokenizer, config.max_len, config.packing, config.data_dir
      )
    }
    eval_rows = input_pipeline.pretraining_rows(
      corpus, corpus.eval_split, tokenizer, config.max_len, config.packing, config.data_dir
    )
  else:
    train_rows = input_pipeline.streaming_pretraining_dataset(
      corpus, corpus.train_split, tokenizer, config.max_len, config.data_dir
    )
    stream = input_pipeline.streaming_pretraining_dataset(
      corpus, corpus.eval_split, tokenizer, config.max_len, config.data_dir
    )
    eval_rows = np.stack(
      [stream[i]["input_ids"] for i in range(min(len(stream), config.eval_examples))]
    )
  eval_rows = {"input_ids": eval_rows[: config.eval_examples]}
  return _Data(
    train=input_pipeline.training_dataset(train_rows, config.batch_size, config.seed),
    eval_splits={"validation": eval_rows},
    tokens_per_batch=config.batch_size * config.max_len,
  )


def _finetuning_data(config, task, tokenizer) -> _Data:
  def arrays(split):
    return input_pipeline.finetuning_arrays(task, split, tokenizer, config.max_len, config.data_dir)

  splits = {split: arrays(split) for split in task.eval_splits}
  if task.test_split:
    splits["test"] = arrays(task.test_split)
  return _Data(
    train=input_pipeline.training_dataset(arrays(task.train_split), config.batch_size, config.seed),
    eval_splits=splits,
    tokens_per_batch=config.batch_size * config.max_len,
  )


def _tokenizer(config, workdir: pathlib.Path):
  """The run's tokenizer, saved in the workdir (fine-tuning reuses its pretraining run's)."""
  saved = workdir / "tokenizer.json"
  init = config.init_from
  if saved.exists():
    return input_pipeline.Tokenizer.from_file(str(saved))
  if config.mode == "finetune" and init.startswith("hf:"):
    tokenizer = input_pipeline.bert_tokenizer(
      str(pathlib.Path(init[3:]) / "vocab.txt"), lowercase=config.tokenizer.lowercase
    )
  elif config.mode == "finetune" and init:
    tokenizer = input_pipeline.Tokenizer.from_file(str(pathlib.Path(init) / "tokenizer.json"))
  else:
    # Fine-tuning from scratch trains its vocabulary on the pretraining corpus too.
    tokenizer = input_pipeline.load_tokenizer(
      vocab_file=config.tokenizer.vocab_file,
      corpus=tasks.get_corpus(config.corpus),
      vocab_size=config.tokenizer.vocab_size,
      train_examples=config.tokenizer.train_examples,
      lowercase=config.tokenizer.lowercase,
      data_dir=config.data_dir,
    )
  tokenizer.save(str(saved))
  return tokenizer


def _pretrained_backbone(config, model_config: ModelConfig):
  """Backbone parameters from `config.init_from`: a pretraining workdir, or "hf:DIR" with a
  Hugging Face `config.json` and `model.safetensors` (upcycled if the model has Möbius layers)."""
  init = config.init_from
  if init.startswith("hf:"):
    directory = pathlib.Path(init[3:])
    state = _load_safetensors(directory / "model.safetensors")
    hf_config = json.loads((directory / "config.json").read_text())
    if "M" not in model_config.layer_kinds:
      return hf_convert.params_from_hf(state, hf_convert.config_from_hf(hf_config))["backbone"]
    vanilla = hf_convert.config_from_hf(hf_config)
    changed = {
      f.name: getattr(model_config, f.name)
      for f in dataclasses.fields(ModelConfig)
      if getattr(model_config, f.name) != getattr(vanilla, f.name)
    }
    _, params = hf_convert.upcycle(state, hf_config, **changed)
    return params["backbone"]
  return restore_run(init).params["backbone"]


@dataclasses.dataclass(frozen=True)
class Run:
  """What a training run's workdir holds, restored (see `restore_run`)."""

  config: ml_collections.ConfigDict  # the run's training config
  model_config: ModelConfig
  model: nn.Module  # MaskedLM (pretraining) or SequenceClassifier (fine-tuning)
  params: dict
  tokenizer: input_pipeline.Tokenizer
  step: int


def restore_run(workdir: str | pathlib.Path, step: int | None = None) -> Run:
  """The model, parameters and tokenizer of the run in `workdir`, at `step` (default latest).

  Raises:
    FileNotFoundError: `workdir` is no training workdir, or holds no checkpoint.
  """
  workdir = pathlib.Path(workdir)
  if not (workdir / "config.json").exists():
    raise FileNotFoundError(
      f"{str(workdir)!r} is no training workdir (it has no config.json): give the --workdir of a "
      "pretraining or fine-tuning run, or 'hf:DIR' for a Hugging Face checkpoint."
    )
  config = ml_collections.ConfigDict(json.loads((workdir / "config.json").read_text()))
  tokenizer = input_pipeline.Tokenizer.from_file(str(workdir / "tokenizer.json"))
  num_labels = None if config.mode == "pretrain" else tasks.get_task(config.task).num_labels
  model, model_config = build_model(config, _vocab_size(config, tokenizer), num_labels)
  state = _abstract_state(model, make_optimizer(config), config)
  checkpointer = Checkpointer(workdir / "checkpoints", every_steps=1, keep=1)
  try:
    if checkpointer.latest_step() is None:
      raise FileNotFoundError(f"{str(workdir)!r} holds no checkpoint; train into it first.")
    step = checkpointer.latest_step() if step is None else step
    restored, _ = checkpointer.restore(serialization.to_state_dict(state), step)
  finally:
    checkpointer.close()
  return Run(config, model_config, model, restored["params"], tokenizer, step)


def _load_safetensors(path: pathlib.Path) -> dict:
  try:
    from safetensors.numpy import load_file
  except ImportError as error:
    raise ImportError(
      "Loading a Hugging Face checkpoint needs `pip install safetensors`."
    ) from error
  return load_file(str(path))


def _vocab_size(config, tokenizer) -> int:
  """Model vocabulary: the tokenizer's, rounded up so that it shards evenly (MosaicBERT)."""
  return _round_up(tokenizer.get_vocab_size(), config.vocab_multiple)


def _init_fn(model, optimizer, config):
  ids = jnp.zeros((1, config.max_len), jnp.int32)

  def init(rng):
    params_rng, state_rng = jax.random.split(rng)
    params = model.init(params_rng, ids)["params"]
    return TrainState.create(apply_fn=model.apply, params=params, tx=optimizer, rng=state_rng)

  return init


def _abstract_state(model, optimizer, config):
  return nn.meta.unbox(jax.eval_shape(_init_fn(model, optimizer, config), jax.random.PRNGKey(0)))


def _load_backbone(backbone: dict, pretrained: dict, what: str) -> dict:
  """`backbone` with every pretrained array put in; only BERT's pooler may stay as it was."""
  target = traverse_util.flatten_dict(backbone)
  source = traverse_util.flatten_dict(jax.device_get(pretrained))
  missing = [k for k in target if k not in source and k[0] != "pooler"]
  unknown = [k for k in source if k not in target]
  if missing or unknown:
    raise ValueError(
      f"{what} does not fit the model: missing {['/'.join(k) for k in missing[:4]]}, "
      f"unexpected {['/'.join(k) for k in unknown[:4]]}. Use the model preset it was made with."
    )
  for key, value in source.items():
    if value.shape != target[key].shape:
      raise ValueError(
        f"{what}: {'/'.join(key)} has shape {value.shape}, the model wants "
        f"{target[key].shape}. Use the model preset and vocabulary it was made with."
      )
  return traverse_util.unflatten_dict({**target, **source})


# -------------------------------------------------------------------------------------- loop


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains as `config` says, checkpointing into `workdir`, and returns the run's summary.

  A run resumes from the latest checkpoint in `workdir/checkpoints` (state, data position,
  RNG). SIGTERM or SIGINT saves a checkpoint and returns early (summary status
  "interrupted"). The summary is also written to `workdir/summary.json`.
  """
  started = time.perf_counter()
  workdir = pathlib.Path(workdir)
  _check_workdir(workdir)
  _check_config(config)
  (workdir / "config.json").write_text(config.to_json_best_effort(indent=2))
  pretraining = config.mode == "pretrain"
  task = None if pretraining else tasks.get_task(config.task)

  tokenizer = _tokenizer(config, workdir)
  if pretraining:
    data = _pretraining_data(config, tasks.get_corpus(config.corpus), tokenizer)
  else:
    data = _finetuning_data(config, task, tokenizer)

  num_labels = None if pretraining else task.num_labels
  model, model_config = build_model(config, _vocab_size(config, tokenizer), num_labels)
  optimizer = make_optimizer(config)
  mesh = partitioning.mesh_from_config(config)
  state, state_sharding = partitioning.sharded_init(
    _init_fn(model, optimizer, config), mesh, jax.random.PRNGKey(config.seed)
  )
  masking = None
  if pretraining:
    masking = dict(
      rate=config.mask_rate,
      max_predictions=max_predictions(config.mask_rate, config.max_len),
      mask_id=tokenizer.token_to_id("[MASK]"),
      vocab_size=tokenizer.get_vocab_size(),
      num_special=len(input_pipeline.SPECIAL_TOKENS),
    )
  objective = Objective(model, config.mode, task is not None and task.is_regression, masking)

  checkpointer = Checkpointer(
    workdir / "checkpoints", every_steps=config.checkpoint_every_steps, keep=config.keep_checkpoints
  )
  data_state = None
  if checkpointer.latest_step() is not None:
    restored, data_state = checkpointer.restore(
      serialization.to_state_dict(
        jax.tree.map(
          lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, state_sharding
        )
      )
    )
    state = serialization.from_state_dict(state, restored)
  elif not pretraining and config.init_from:
    backbone = _load_backbone(
      state.params["backbone"],
      _pretrained_backbone(config, model_config),
      f"init_from={config.init_from!r}",
    )
    params = {**state.params, "backbone": backbone}
    state = state.replace(params=jax.device_put(params, state_sharding.params))
  start_step = int(state.step)

  batch_sharding = partitioning.batch_sharding(mesh)
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  with nn.logical_axis_rules(DEFAULT_RULES), jax.set_mesh(mesh):
    p_train_step = jax.jit(
      functools.partial(train_step, objective=objective, accum_steps=config.grad_accum_steps),
      in_shardings=(state_sharding, batch_sharding, replicated),
      out_shardings=(state_sharding, replicated),
      donate_argnums=0,
    )
    p_eval_step = jax.jit(
      functools.partial(eval_step, objective=objective, rng=jax.random.PRNGKey(config.seed + 1)),
      in_shardings=(state_sharding, batch_sharding),
    )
  writer = metrics.MetricWriter(workdir)
  iterator = input_pipeline.iterate(data.train, data_state)

  def save(step, *, force=False):
    checkpointer.save(step, serialization.to_state_dict(state), iterator.get_state(), force=force)

  stop = {"signal": None}
  handlers = {
    sig: signal.signal(sig, lambda sig, _: stop.update(signal=sig))
    for sig in (signal.SIGTERM, signal.SIGINT)
  }
  history, status, timed, step_metrics = [], "completed", None, None
  progress = tqdm(
    total=config.num_train_steps,
    initial=start_step,
    disable=not config.progress_bar,
    desc=f"{config.mode} {config.model}",
    unit="step",
    dynamic_ncols=True,
  )
  try:
    for step in range(start_step, config.num_train_steps):
      if stop["signal"] is not None:
        status = "interrupted"
        break
      batch = partitioning.shard_batch(next(iterator), batch_sharding)
      with nn.logical_axis_rules(DEFAULT_RULES), jax.set_mesh(mesh):
        state, step_metrics = p_train_step(state, batch, jax.random.fold_in(state.rng, step))
      done = step + 1
      if step == start_step:  # the first step compiles: time the ones after it
        jax.block_until_ready(state)
        timed = (time.perf_counter(), done)
      due_checkpoint = done % config.checkpoint_every_steps == 0 or done == config.num_train_steps
      if done % config.log_every_steps == 0 or due_checkpoint:
        step_metrics = _finite(jax.device_get(step_metrics), done, checkpointer.directory)
        history.append({"step": done, **step_metrics})
        writer.write_scalars(done, {f"train/{k}": v for k, v in step_metrics.items()})
        rate = progress.format_dict["rate"]  # steps per second, smoothed
        tokens = f"{rate * data.tokens_per_batch:.0f}" if rate else "…"
        progress.set_postfix(loss=f"{step_metrics['loss']:.3f}", tokens_per_s=tokens)
      progress.update(1)
      save(done, force=done == config.num_train_steps)
    if status == "interrupted" and step_metrics is not None:
      _finite(jax.device_get(step_metrics), int(state.step), checkpointer.directory)
      save(int(state.step), force=True)
  finally:
    progress.close()
    for sig, handler in handlers.items():
      signal.signal(sig, handler)
    checkpointer.close()
  jax.block_until_ready(state)
  tokens_per_second = None
  if timed and int(state.step) > timed[1]:
    elapsed = time.perf_counter() - timed[0]
    tokens_per_second = data.tokens_per_batch * (int(state.step) - timed[1]) / elapsed

  results = {}
  if status == "completed":
    for split, rows in data.eval_splits.items():
      results[split] = _evaluate(p_eval_step, state, rows, config, task, batch_sharding, mesh)
    writer.write_scalars(
      int(state.step), {f"{split}/{k}": v for split, r in results.items() for k, v in r.items()}
    )
  summary = {
    "status": status,
    "mode": config.mode,
    "model": config.model,
    "task": config.corpus if pretraining else config.task,
    "step": int(state.step),
    "parameters": count_params(state.params),
    "train": history,
    "eval": results,
    "tokens_per_second": tokens_per_second,
    "wall_time_seconds": time.perf_counter() - started,
  }
  writer.write_summary(summary)
  writer.close()
  return summary


def _finite(step_metrics: dict, step: int, checkpoints: pathlib.Path) -> dict[str, float]:
  """The metrics as floats; raises `NonFiniteLossError` if any is NaN or infinite."""
  values = {k: float(v) for k, v in step_metrics.items()}
  if not all(math.isfinite(v) for v in values.values()):
    raise NonFiniteLossError(
      f"Non-finite loss or gradients at step {step}: {values}. The last good checkpoint in "
      f"{checkpoints} is kept; lower the learning rate or use float32, then resume."
    )
  return values


def _evaluate(p_eval_step, state, rows, config, task, batch_sharding, mesh) -> dict[str, float]:
  """Loss and metrics of one split, every row once."""
  totals, predictions = {}, []
  for batch in input_pipeline.eval_batches(rows, config.eval_batch_size):
    weight = batch.pop("weight")
    if task is not None:
      batch["weight"] = weight
    else:
      batch = {"input_ids": batch["input_ids"]}
    with nn.logical_axis_rules(DEFAULT_RULES), jax.set_mesh(mesh):
      out = jax.device_get(p_eval_step(state, partitioning.shard_batch(batch, batch_sharding)))
    if "predictions" in out:
      predictions.append(np.asarray(out.pop("predictions"))[weight > 0])
    for key, value in out.items():
      totals[key] = totals.get(key, 0.0) + float(value)
  count = max(totals["count"], 1.0)
  result = {"loss": totals["loss_sum"] / count}
  if "correct" in totals:
    result["accuracy"] = totals["correct"] / count
  if task is not None:
    result.update(metrics.compute(task.metrics, rows["label"], np.concatenate(predictions)))
  return result
