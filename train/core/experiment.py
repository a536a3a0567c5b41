"""What a config builds: a run's tokenizer, data, model, objective and mesh; pretrained weights;
and a finished run restored from its workdir (`restore_run`).

`config.mode` is read here only: the loop gets an `Experiment` and treats every run alike.
"""

from __future__ import annotations

import dataclasses
import pathlib

import flax.linen as nn
import jax
import ml_collections
import numpy as np
import optax
from flax import serialization, traverse_util
from jax.sharding import Mesh

from mobius_jax.models import MaskedLM, ModelConfig, SequenceClassifier, hf
from train import files
from train.core import checks, optim, partitioning
from train.core.checkpointing import Checkpointer
from train.core.config import defaults
from train.core.objectives import (
  ClassificationObjective,
  MaskedLMObjective,
  Objective,
  max_predictions,
)
from train.core.state import abstract_state
from train.data import input_pipeline, offline, pretrained, tasks, tokenizer


def parse_init_from(init_from: str) -> tuple[str, pathlib.Path] | None:
  """`config.init_from` → ("hf", folder) for "hf:DIR" or a name of `pretrained.PRETRAINED`
  (where `prepare_datasets` unpacks it; write "./NAME" for a workdir of that name), ("run",
  workdir) for a path, or None."""
  if not init_from:
    return None
  if init_from.startswith("hf:"):
    return "hf", pathlib.Path(init_from.removeprefix("hf:"))
  if init_from in pretrained.PRETRAINED:
    return "hf", pathlib.Path(pretrained.path(init_from))
  return "run", pathlib.Path(init_from)


def task_of(config: ml_collections.ConfigDict) -> tasks.Task | None:
  """The fine-tuning task, or None for pretraining."""
  return None if config.mode == "pretrain" else tasks.get_task(config.task)


def model_vocab_size(config: ml_collections.ConfigDict, tok: tokenizer.Tokenizer) -> int:
  """The tokenizer's vocabulary rounded up to `vocab_multiple`, to shard evenly (MosaicBERT)."""
  return -(-tok.get_vocab_size() // config.vocab_multiple) * config.vocab_multiple


def model_name(config: ml_collections.ConfigDict) -> str:
  """What the run trains, for people: the preset, or the checkpoint it starts from (whose
  model is its own, whatever `config.model` says)."""
  source = parse_init_from(config.init_from)
  return config.init_from if source and source[0] == "hf" else config.model


def build_model(
  config: ml_collections.ConfigDict, vocab_size: int, num_labels: int | None
) -> tuple[nn.Module, ModelConfig]:
  """The model of `config.model` (a preset) or, with `init_from="hf:DIR"`, of DIR/config.json;
  `config.model_overrides` (e.g. a Möbius layout, to upcycle) applied to either, and for a
  checkpoint the fields its `upcycle_form` needs. A masked LM for `num_labels=None`, else a
  classifier with K = `num_labels` (1: regression)."""
  overrides = {"dtype": config.dtype, **config.model_overrides.to_dict()}
  source = parse_init_from(config.init_from)
  if source and source[0] == "hf":
    checkpoint = hf.load_checkpoint(source[1], weights=False)
    overrides = {**hf.UPCYCLE_FIELDS[config.upcycle_form], **overrides}
    model_config = hf.config_from_hf(checkpoint.config, **overrides)
  else:
    model_config = ModelConfig.preset(config.model, vocab_size=vocab_size, **overrides)
  if num_labels is None:
    return MaskedLM(model_config), model_config
  return SequenceClassifier(model_config, num_labels), model_config


def run_tokenizer(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> tokenizer.Tokenizer:
  """The run's tokenizer: the workdir's, its `init_from`'s, or a trained one; saved in the
  workdir (so that fine-tuning reuses its pretraining run's). Process 0 makes it, the others
  read it once it is saved."""
  saved = workdir / "tokenizer.json"
  if jax.process_index() == 0 and not saved.exists():
    files.write_text(saved, _new_tokenizer(config).to_str())
  partitioning.barrier("tokenizer saved")
  return tokenizer.read_tokenizer(saved)


def _new_tokenizer(config: ml_collections.ConfigDict) -> tokenizer.Tokenizer:
  source = parse_init_from(config.init_from)
  if config.mode == "finetune" and source and source[0] == "hf":
    checkpoint = hf.load_checkpoint(source[1], weights=False)
    if checkpoint.vocab_file is not None:
      return tokenizer.bert_tokenizer(
        str(checkpoint.vocab_file), lowercase=config.tokenizer.lowercase
      )
    if checkpoint.tokenizer_file is not None:
      return tokenizer.hub_tokenizer(checkpoint.tokenizer_file)
    raise FileNotFoundError(
      f"init_from={config.init_from!r} has neither vocab.txt nor tokenizer.json: put the "
      f"checkpoint's tokenizer beside its config.json (in {checkpoint.directory})."
    )
  if config.mode == "finetune" and source:
    return tokenizer.read_tokenizer(source[1] / "tokenizer.json")
  # Fine-tuning from scratch trains its vocabulary on the pretraining corpus too.
  return tokenizer.load_tokenizer(
    vocab_file=config.tokenizer.vocab_file,
    corpus=tasks.get_corpus(config.corpus),
    vocab_size=config.tokenizer.vocab_size,
    train_examples=config.tokenizer.train_examples,
    lowercase=config.tokenizer.lowercase,
    data_dir=config.data_dir,
  )


def prepare_datasets(config: ml_collections.ConfigDict) -> None:
  """Builds the offline datasets the run reads, and unpacks the pretrained checkpoint it starts
  from, on process 0 only; the others wait."""
  if jax.process_index() == 0:
    if config.init_from in pretrained.PRETRAINED:
      pretrained.prepare(config.init_from)
    needed = [task_of(config) or tasks.get_corpus(config.corpus)]
    if not config.tokenizer.vocab_file and not config.init_from:
      needed.append(tasks.get_corpus(config.corpus))  # a vocabulary is trained on it
    for dataset in {source.dataset for source in needed if source.offline}:
      offline.prepare(dataset, config.data_dir)
  partitioning.barrier("datasets prepared")


def pretrained_backbone(
  config: ml_collections.ConfigDict, model_config: ModelConfig, fresh: dict
) -> dict:
  """Backbone parameters from `config.init_from`: a pretraining workdir, or "hf:DIR" with a
  Hugging Face checkpoint (upcycled if the model has Möbius layers, its feed-forward blocks
  widened if the model's are wider); `fresh` is the model's initialised backbone."""
  kind, path = parse_init_from(config.init_from)
  if kind == "run":
    return restore_run(path).params["backbone"]
  checkpoint = hf.load_checkpoint(path)
  vanilla = hf.config_from_hf(checkpoint.config)
  if "M" not in model_config.layer_kinds:
    backbone = hf.params_from_hf(checkpoint.state_dict, vanilla)["backbone"]
    if model_config.intermediate_size > vanilla.intermediate_size:
      return widened_feed_forward(backbone, jax.device_get(fresh))
    return backbone
  changed = {
    f.name: getattr(model_config, f.name)
    for f in dataclasses.fields(ModelConfig)
    if getattr(model_config, f.name) != getattr(vanilla, f.name)
  }
  upcycled = hf.upcycle(
    checkpoint.state_dict, checkpoint.config, form=config.upcycle_form, **changed
  )
  return upcycled[1]["backbone"]


def widened_feed_forward(pretrained: dict, fresh: dict) -> dict:
  """`pretrained` with each layer's feed-forward block widened to the intermediate size of
  `fresh` (a backbone of the same model, initialised) and computing the same function: the new
  units take their input weights and biases from `fresh` and start with output weights 0, so
  they add nothing at first while every one of their weights has a gradient. (A vanilla
  model's parameters grown to an upcycled Möbius model's count: the parameter-matched control.)
  """
  encoder = dict(pretrained["encoder"])
  for name, layer in pretrained["encoder"].items():
    mlp, grown = layer["mlp"], fresh["encoder"][name]["mlp"]["intermediate"]
    width = mlp["intermediate"]["kernel"].shape[-1]
    new_units = grown["kernel"].shape[-1] - width
    intermediate = {
      key: np.concatenate([mlp["intermediate"][key], grown[key][..., width:]], axis=-1)
      for key in ("kernel", "bias")
    }
    output = dict(mlp["output"])
    silent = np.zeros((new_units, output["kernel"].shape[-1]), output["kernel"].dtype)
    output["kernel"] = np.concatenate([output["kernel"], silent])
    encoder[name] = {**layer, "mlp": {"intermediate": intermediate, "output": output}}
  return {**pretrained, "encoder": encoder}


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


# Masked-LM accuracy is also reported at this rate when training masks at another: MosaicBERT
# evaluates at 15 % whatever its training rate ("for consistent comparison", its yamls say).
EVAL_MASK_RATE = 0.15


@dataclasses.dataclass(frozen=True)
class Evaluation:
  """One evaluation at the end of a run: the rows of a split, scored by an objective."""

  name: str  # the key in the summary's "eval"
  rows: dict  # arrays `[N, ...]`
  objective: Objective


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
  evaluations: tuple[Evaluation, ...]
  mesh: Mesh
  rules: partitioning.Rules


def build_experiment(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> Experiment:
  """The run `config` describes (the tokenizer is saved into `workdir`).

  Raises:
    ValueError: the config does not fit the model or the devices (`checks.check_fit`).
  """
  task = task_of(config)
  prepare_datasets(config)
  tok = run_tokenizer(config, workdir)
  model, model_config = build_model(
    config, model_vocab_size(config, tok), None if task is None else task.num_labels
  )
  mesh = partitioning.mesh_from_config(config)
  checks.check_fit(config, model_config, tok.get_vocab_size(), mesh)
  if task is None:
    data = input_pipeline.pretraining_data(config, tasks.get_corpus(config.corpus), tok)
    objective = _masked_lm(model, config.mask_rate, config.max_len, tok)
    (rows,) = data.eval_splits.values()
    evaluations = [Evaluation("validation", rows, objective)]
    if config.mask_rate != EVAL_MASK_RATE:
      masked_lm = _masked_lm(model, EVAL_MASK_RATE, config.max_len, tok)
      evaluations.append(Evaluation(f"validation_mask{EVAL_MASK_RATE:g}", rows, masked_lm))
  else:
    data = input_pipeline.finetuning_data(config, task, tok)
    objective = ClassificationObjective(model, task)
    evaluations = [Evaluation(name, rows, objective) for name, rows in data.eval_splits.items()]
  return Experiment(
    config=config,
    name=config.corpus if task is None else task.name,
    tokenizer=tok,
    data=data,
    model=model,
    model_config=model_config,
    optimizer=optim.make_optimizer(config),
    objective=objective,
    evaluations=tuple(evaluations),
    mesh=mesh,
    rules=partitioning.axis_rules(config),
  )


def _masked_lm(model, rate: float, length: int, tok) -> MaskedLMObjective:
  masking = dict(
    rate=rate,
    max_predictions=max_predictions(rate, length),
    mask_id=tok.token_to_id("[MASK]"),
    special_ids=tokenizer.special_ids(tok),
    vocab_size=tok.get_vocab_size(),
  )
  return MaskedLMObjective(model, masking)


@dataclasses.dataclass(frozen=True)
class Run:
  """What a training run's workdir holds, restored (see `restore_run`)."""

  config: ml_collections.ConfigDict  # the run's training config
  model_config: ModelConfig
  model: nn.Module  # MaskedLM (pretraining) or SequenceClassifier (fine-tuning)
  params: dict
  tokenizer: tokenizer.Tokenizer
  step: int


def saved_config(path: pathlib.Path) -> ml_collections.ConfigDict:
  """A run's saved config.json over `train.core.config.defaults()` (a key the run did not save
  keeps its default)."""
  config = defaults()
  config.update(files.read_json(path, "run's config"))
  return config


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
  config = saved_config(workdir / "config.json")
  tok = tokenizer.read_tokenizer(workdir / "tokenizer.json")
  task = task_of(config)
  model, model_config = build_model(
    config, model_vocab_size(config, tok), None if task is None else task.num_labels
  )
  state = abstract_state(model, optim.make_optimizer(config), config.max_len)
  checkpointer = Checkpointer(workdir / "checkpoints", keep=config.keep_checkpoints)
  try:
    if checkpointer.latest_step() is None:
      raise FileNotFoundError(f"{str(workdir)!r} holds no checkpoint; train into it first.")
    restored, _, step = checkpointer.restore(serialization.to_state_dict(state), step)
  finally:
    checkpointer.close()
  return Run(config, model_config, model, restored["params"], tok, step)
