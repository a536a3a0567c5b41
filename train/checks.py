"""Checks before any work: the config's keys and values, and that the workdir is writable.

Every error names the config key (or the path), the value, and what would be right.
"""

from __future__ import annotations

import difflib
import pathlib

import ml_collections

from configs import default as default_config
from train import tasks
from train.experiment import MODES

# Keys whose value is a free-form dict (model fields), not checked against the defaults.
FREE_FORM = ("model_overrides",)


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises `ValueError` on an unknown key (with "Did you mean"), mode, corpus or task, and on
  sizes that do not fit together."""
  check_keys(config, default_config.get_config())
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


def check_keys(config, reference, prefix: str = "") -> None:
  """Every key of `config` must be one of `configs/default.py`'s (catches typos)."""
  for key, value in config.items():
    name = f"{prefix}{key}"
    if key not in reference:
      close = difflib.get_close_matches(key, list(reference.keys()), n=1)
      hint = f" Did you mean {prefix}{close[0]!r}?" if close else ""
      raise ValueError(f"Unknown config key {name!r}.{hint} The keys are in configs/default.py.")
    if isinstance(value, ml_collections.ConfigDict) and key not in FREE_FORM:
      check_keys(value, reference[key], prefix=f"{name}.")


def check_workdir(workdir: pathlib.Path) -> None:
  """Creates `workdir` if needed; raises `PermissionError` if nothing can be written there."""
  try:
    workdir.mkdir(parents=True, exist_ok=True)
    probe = workdir / ".write_test"
    probe.write_text("")
    probe.unlink()
  except OSError as error:
    raise PermissionError(
      f"Cannot write to the workdir {workdir} ({error.strerror}); pass a writable --workdir."
    ) from error
