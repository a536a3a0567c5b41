"""Checks before any work: the config's keys and values, the workdir, and a resumed workdir's
saved config. Every error names the config key (or the path), its value, and what is allowed.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import pathlib
from typing import Literal, get_args

import jax
import ml_collections
from jax.sharding import Mesh

from mobius_jax.models import ModelConfig, hf
from mobius_jax.sharding import DATA, FSDP
from train import files
from train.core import config as config_schema
from train.core import optim
from train.data import tasks

Mode = Literal["pretrain", "finetune"]
MODES: tuple[str, ...] = get_args(Mode)

# Keys whose value is a free-form dict (model fields), not checked against the defaults.
FREE_FORM = ("model_overrides",)
# The shortest rows that leave room for [CLS], [SEP] and a few tokens to mask.
MIN_LENGTH = 8
# Keys a resumed run may change: how long it runs, how often it logs, saves and evaluates, and
# where it runs (orbax reshards a checkpoint onto another mesh). Any other change alters what
# the checkpoint means and needs `resume_with_changes`.
RESUMABLE_CHANGES = (
  "num_train_steps",
  "log_every_steps",
  "checkpoint_every_steps",
  "keep_checkpoints",
  "progress_bar",
  "eval_batch_size",
  "eval_examples",
  "data_dir",
  "mesh.",
  "logical_axis_rules",
  "resume_with_changes",
)


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises `ValueError` on an unknown key (with "Did you mean"), mode, corpus or task, and on
  any size or optimiser value out of range."""
  check_keys(config, config_schema.defaults())
  if config.mode not in MODES:
    raise ValueError(f"config.mode={config.mode!r}: use one of {MODES}.")
  if config.mode == "pretrain":
    tasks.get_corpus(config.corpus)
  else:
    tasks.get_task(config.task)
  _check_sizes(config)
  _check_optimizer(config.optimizer)
  forms = hf.UPCYCLE_FORMS
  _require(config.upcycle_form in forms, "upcycle_form", config.upcycle_form, f"use one of {forms}")
  vocab_file = config.tokenizer.vocab_file
  if vocab_file is None:
    raise ValueError(
      "This config needs config.tokenizer.vocab_file: pass "
      "--config.tokenizer.vocab_file=/path/to/bert-base-uncased/vocab.txt (the paper's "
      "tokenizer), or --config.tokenizer.vocab_file='' to train a new WordPiece on the corpus."
    )
  if vocab_file and not pathlib.Path(vocab_file).is_file():
    raise ValueError(
      f"config.tokenizer.vocab_file={vocab_file!r} is no file: give the path of a BERT "
      "vocab.txt (one token per line), or '' to train a vocabulary on the corpus."
    )


def check_keys(config, reference, prefix: str = "") -> None:
  """Every key of `config` is one of `train.core.config.defaults()`'s (catches typos)."""
  for key, value in config.items():
    name = f"{prefix}{key}"
    if key not in reference:
      close = difflib.get_close_matches(key, list(reference.keys()), n=1)
      hint = f" Did you mean {prefix + close[0]!r}?" if close else ""
      raise ValueError(f"Unknown config key {name!r}.{hint} The keys are in train/core/config.py.")
    if isinstance(value, ml_collections.ConfigDict) and key not in FREE_FORM:
      check_keys(value, reference[key], prefix=f"{name}.")


def _require(ok: bool, key: str, value, allowed: str) -> None:
  if not ok:
    raise ValueError(f"config.{key}={value!r}: {allowed}.")


def _is_int(value) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def _check_sizes(config: ml_collections.ConfigDict) -> None:
  for key in ("batch_size", "eval_batch_size", "eval_examples", "log_every_steps"):
    _require(_is_int(config[key]) and config[key] > 0, key, config[key], "use a positive integer")
  for key in ("checkpoint_every_steps", "keep_checkpoints", "vocab_multiple"):
    _require(_is_int(config[key]) and config[key] > 0, key, config[key], "use a positive integer")
  accum = config.grad_accum_steps
  _require(_is_int(accum) and accum > 0, "grad_accum_steps", accum, "use a positive integer")
  _require(
    config.batch_size % accum == 0,
    "batch_size",
    config.batch_size,
    f"must be a multiple of grad_accum_steps={accum}",
  )
  steps = config.num_train_steps
  _require(
    _is_int(steps) and steps >= 0,
    "num_train_steps",
    steps,
    "use an integer ≥ 0 (0 evaluates the initial or restored state without training)",
  )
  _require(
    _is_int(config.max_len) and config.max_len >= MIN_LENGTH,
    "max_len",
    config.max_len,
    f"use at least {MIN_LENGTH} tokens (rows hold [CLS], [SEP] and tokens to mask)",
  )
  _require(0.0 < config.mask_rate < 1.0, "mask_rate", config.mask_rate, "use a rate in (0, 1)")
  buckets = tuple(config.length_buckets)
  _require(
    all(_is_int(b) and MIN_LENGTH <= b <= config.max_len for b in buckets),
    "length_buckets",
    buckets,
    f"use lengths from {MIN_LENGTH} to max_len={config.max_len}",
  )
  size = config.tokenizer.vocab_size
  _require(_is_int(size) and size > 16, "tokenizer.vocab_size", size, "use more than 16 tokens")


def _check_optimizer(opt: ml_collections.ConfigDict) -> None:
  def finite(key, low, allowed, *, closed=True):
    value = opt[key]
    ok = isinstance(value, int | float) and math.isfinite(value)
    ok = ok and (value >= low if closed else value > low)
    _require(ok, f"optimizer.{key}", value, allowed)

  finite("learning_rate", 0.0, "use a finite rate ≥ 0")
  finite("weight_decay", 0.0, "use a finite value ≥ 0")
  finite("grad_clip", 0.0, "use a finite global norm ≥ 0 (0: no clipping)")
  finite("eps", 0.0, "use a finite value > 0", closed=False)
  for key in ("b1", "b2"):
    finite(key, 0.0, "use a value in [0, 1)")
    _require(opt[key] < 1.0, f"optimizer.{key}", opt[key], "use a value in [0, 1)")
  for key in ("warmup_ratio", "final_rate"):
    finite(key, 0.0, "use a value in [0, 1]")
    _require(opt[key] <= 1.0, f"optimizer.{key}", opt[key], "use a value in [0, 1]")
  for key, allowed in (
    ("schedule", optim.SCHEDULES),
    ("weight_decay_scaling", optim.DECAY_SCALINGS),
  ):
    _require(opt[key] in allowed, f"optimizer.{key}", opt[key], f"use one of {allowed}")
  for key in ("no_decay", "frozen"):
    names = opt[key]
    ok = isinstance(names, tuple | list) and all(isinstance(n, str) for n in names)
    _require(ok, f"optimizer.{key}", names, "use a tuple of module or parameter names")
  pairs = opt.rate_multipliers
  ok = isinstance(pairs, tuple | list) and all(
    isinstance(p, tuple | list)
    and len(p) == 2
    and isinstance(p[0], str)
    and isinstance(p[1], int | float)
    and math.isfinite(p[1])
    and p[1] >= 0
    for p in pairs
  )
  _require(ok, "optimizer.rate_multipliers", pairs, "use ((name, factor ≥ 0), …)")


def check_fit(
  config: ml_collections.ConfigDict, model_config: ModelConfig, vocab_size: int, mesh: Mesh
) -> None:
  """What the config asks of the model and the devices: rows no longer than the position
  table, a vocabulary no larger than the embedding table, batches that split evenly."""
  if model_config.family == "bert" and config.max_len > model_config.max_position_embeddings:
    raise ValueError(
      f"config.max_len={config.max_len} exceeds the model's "
      f"{model_config.max_position_embeddings} position embeddings: use max_len ≤ "
      f"{model_config.max_position_embeddings}."
    )
  if vocab_size > model_config.vocab_size:
    raise ValueError(
      f"The tokenizer has {vocab_size} tokens, the model's embedding table "
      f"{model_config.vocab_size} rows: use the vocabulary the model was made with (the "
      "checkpoint's vocab.txt), or a larger model_overrides.vocab_size."
    )
  parallel = mesh.shape[DATA] * mesh.shape[FSDP]
  processes = jax.process_count()
  for key in ("batch_size", "eval_batch_size"):
    for parts, what in (
      (parallel, "data-parallel devices (mesh data × fsdp)"),
      (processes, "processes"),
    ):
      _require(config[key] % parts == 0, key, config[key], f"must split over the {parts} {what}")
  micro = config.batch_size // config.grad_accum_steps
  _require(
    micro % parallel == 0,
    "grad_accum_steps",
    config.grad_accum_steps,
    f"leaves micro-batches of {micro} rows, which do not split over {parallel} data-parallel "
    "devices",
  )


def check_workdir(workdir: str | pathlib.Path) -> pathlib.Path:
  """The workdir as a path, created if needed; raises if it is empty or nothing can be
  written there."""
  if not str(workdir).strip():
    raise ValueError("The workdir is empty: pass --workdir DIR (it is created if needed).")
  workdir = pathlib.Path(workdir)
  try:
    workdir.mkdir(parents=True, exist_ok=True)
    if jax.process_index() == 0:
      files.write_text(workdir / ".write_test", "")
      (workdir / ".write_test").unlink()
  except OSError as error:
    raise PermissionError(
      f"Cannot write to the workdir {workdir} ({error.strerror}); pass a writable --workdir."
    ) from error
  return workdir


def check_resume(config: ml_collections.ConfigDict, saved_path: pathlib.Path) -> list[str]:
  """Compares the config with the saved config of the run being resumed.

  Returns:
    The changed keys a resume allows (`RESUMABLE_CHANGES`, or all with `resume_with_changes`).

  Raises:
    ValueError: keys that change what the checkpoint means differ (each listed).
  """
  saved = _flatten(files.read_json(saved_path, "saved config"))
  new = _flatten(json.loads(config.to_json_best_effort()))
  changed = sorted(key for key in new.keys() & saved.keys() if new[key] != saved[key])
  blocking = [key for key in changed if not key.startswith(RESUMABLE_CHANGES)]
  if blocking and not config.resume_with_changes:
    listed = "; ".join(f"{key}: {saved[key]!r} → {new[key]!r}" for key in blocking)
    raise ValueError(
      f"This workdir holds a checkpoint of another configuration ({saved_path}): {listed}. "
      "Use a new --workdir to start afresh, set these keys back to the saved values to "
      "resume, or pass --config.resume_with_changes=True to resume with them (for example a "
      "lower learning rate after a non-finite loss)."
    )
  for key in changed:
    logging.warning("Resuming with %s changed: %r → %r", key, saved[key], new[key])
  return changed


def _flatten(tree: dict, prefix: str = "") -> dict:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict) and key not in FREE_FORM:
      flat.update(_flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat
