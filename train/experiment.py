"""What a config builds: a run's tokenizer, data, model, objective and mesh; pretrained weights;
and a finished run restored from its workdir (`restore_run`).

`config.mode` is read here only: the loop gets an `Experiment` and treats every run alike.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Literal, get_args

import flax.linen as nn
import jax
import ml_collections
import optax
from flax import serialization, traverse_util
from jax.sharding import Mesh

from mobius_jax.models import MaskedLM, ModelConfig, SequenceClassifier, hf
from train import input_pipeline, optim, partitioning, tasks, tokenizer
from train.checkpointing import Checkpointer
from train.objectives import ClassificationObjective, MaskedLMObjective, Objective, max_predictions
from train.state import abstract_state

Mode = Literal["pretrain", "finetune"]
MODES: tuple[str, ...] = get_args(Mode)


def parse_init_from(init_from: str) -> tuple[str, pathlib.Path] | None:
  """`config.init_from` → ("hf", folder) for "hf:DIR", ("run", workdir) for a path, or None."""
  if not init_from:
    return None
  if init_from.startswith("hf:"):
    return "hf", pathlib.Path(init_from.removeprefix("hf:"))
  return "run", pathlib.Path(init_from)


def task_of(config: ml_collections.ConfigDict) -> tasks.Task | None:
  """The fine-tuning task, or None for pretraining."""
  return None if config.mode == "pretrain" else tasks.get_task(config.task)


def model_vocab_size(config: ml_collections.ConfigDict, tok: tokenizer.Tokenizer) -> int:
  """The tokenizer's vocabulary rounded up to `vocab_multiple`, to shard evenly (MosaicBERT)."""
  return -(-tok.get_vocab_size() // config.vocab_multiple) * config.vocab_multiple


def build_model(
  config: ml_collections.ConfigDict, vocab_size: int, num_labels: int | None
) -> tuple[nn.Module, ModelConfig]:
  """The model of `config.model` (a preset) or, with `init_from="hf:DIR"`, of DIR/config.json;
  `config.model_overrides` (e.g. a Möbius layout, to upcycle) applied to either. A masked LM
  for `num_labels=None`, else a classifier with K = `num_labels` (1: regression)."""
  overrides = {"dtype": config.dtype, **config.model_overrides.to_dict()}
  source = parse_init_from(config.init_from)
  if source and source[0] == "hf":
    checkpoint = hf.load_checkpoint(source[1], weights=False)
    model_config = hf.config_from_hf(checkpoint.config, **overrides)
  else:
    model_config = ModelConfig.preset(config.model, vocab_size=vocab_size, **overrides)
  if num_labels is None:
    return MaskedLM(model_config), model_config
  return SequenceClassifier(model_config, num_labels), model_config


def run_tokenizer(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> tokenizer.Tokenizer:
  """The run's tokenizer: the workdir's, its `init_from`'s, or a trained one; saved in the
  workdir (so that fine-tuning reuses its pretraining run's)."""
  saved = workdir / "tokenizer.json"
  if saved.exists():
    return tokenizer.Tokenizer.from_file(str(saved))
  source = parse_init_from(config.init_from)
  if config.mode == "finetune" and source and source[0] == "hf":
    vocab = str(source[1] / "vocab.txt")
    tok = tokenizer.bert_tokenizer(vocab, lowercase=config.tokenizer.lowercase)
  elif config.mode == "finetune" and source:
    tok = tokenizer.Tokenizer.from_file(str(source[1] / "tokenizer.json"))
  else:
    # Fine-tuning from scratch trains its vocabulary on the pretraining corpus too.
    tok = tokenizer.load_tokenizer(
      vocab_file=config.tokenizer.vocab_file,
      corpus=tasks.get_corpus(config.corpus),
      vocab_size=config.tokenizer.vocab_size,
      train_examples=config.tokenizer.train_examples,
      lowercase=config.tokenizer.lowercase,
      data_dir=config.data_dir,
    )
  tok.save(str(saved))
  return tok


def pretrained_backbone(config: ml_collections.ConfigDict, model_config: ModelConfig) -> dict:
  """Backbone parameters from `config.init_from`: a pretraining workdir, or "hf:DIR" with a
  Hugging Face checkpoint (upcycled if the model has Möbius layers)."""
  kind, path = parse_init_from(config.init_from)
  if kind == "run":
    return restore_run(path).params["backbone"]
  checkpoint = hf.load_checkpoint(path)
  vanilla = hf.config_from_hf(checkpoint.config)
  if "M" not in model_config.layer_kinds:
    return hf.params_from_hf(checkpoint.state_dict, vanilla)["backbone"]
  changed = {
    f.name: getattr(model_config, f.name)
    for f in dataclasses.fields(ModelConfig)
    if getattr(model_config, f.name) != getattr(vanilla, f.name)
  }
  return hf.upcycle(checkpoint.state_dict, checkpoint.config, **changed)[1]["backbone"]


def load_backbone(backbone: dict, pretrained: dict, what: str) -> dict:
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


@dataclasses.dataclass(frozen=True)
class Experiment:
  """Everything a config builds before the first step."""

  config: ml_collections.ConfigDict
  name: str  # the corpus (pretraining) or the task (fine-tuning)
  tokenizer: tokenizer.Tokenizer
  data: input_pipeline.Data
  model: nn.Module
  model_config: ModelConfig
  optimizer: optax.GradientTransformation
  objective: Objective
  mesh: Mesh
  rules: partitioning.Rules


def build_experiment(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> Experiment:
  """The run `config` describes (the tokenizer is saved into `workdir`)."""
  task = task_of(config)
  tok = run_tokenizer(config, workdir)
  model, model_config = build_model(
    config, model_vocab_size(config, tok), None if task is None else task.num_labels
  )
  if task is None:
    corpus = tasks.get_corpus(config.corpus)
    data = input_pipeline.pretraining_data(config, corpus, tok)
    masking = dict(
      rate=config.mask_rate,
      max_predictions=max_predictions(config.mask_rate, config.max_len),
      mask_id=tok.token_to_id("[MASK]"),
      vocab_size=tok.get_vocab_size(),
      num_special=len(tokenizer.SPECIAL_TOKENS),
    )
    objective = MaskedLMObjective(model, masking)
  else:
    data = input_pipeline.finetuning_data(config, task, tok)
    objective = ClassificationObjective(model, task)
  return Experiment(
    config=config,
    name=config.corpus if task is None else task.name,
    tokenizer=tok,
    data=data,
    model=model,
    model_config=model_config,
    optimizer=optim.make_optimizer(config),
    objective=objective,
    mesh=partitioning.mesh_from_config(config),
    rules=partitioning.axis_rules(config),
  )


@dataclasses.dataclass(frozen=True)
class Run:
  """What a training run's workdir holds, restored (see `restore_run`)."""

  config: ml_collections.ConfigDict  # the run's training config
  model_config: ModelConfig
  model: nn.Module  # MaskedLM (pretraining) or SequenceClassifier (fine-tuning)
  params: dict
  tokenizer: tokenizer.Tokenizer
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
  tok = tokenizer.Tokenizer.from_file(str(workdir / "tokenizer.json"))
  task = task_of(config)
  model, model_config = build_model(
    config, model_vocab_size(config, tok), None if task is None else task.num_labels
  )
  state = abstract_state(model, optim.make_optimizer(config), config.max_len)
  checkpointer = Checkpointer(workdir / "checkpoints", every_steps=1, keep=1)
  try:
    if checkpointer.latest_step() is None:
      raise FileNotFoundError(f"{str(workdir)!r} holds no checkpoint; train into it first.")
    step = checkpointer.latest_step() if step is None else step
    restored, _ = checkpointer.restore(serialization.to_state_dict(state), step)
  finally:
    checkpointer.close()
  return Run(config, model_config, model, restored["params"], tok, step)
