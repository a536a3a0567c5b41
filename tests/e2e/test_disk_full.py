"""A checkpoint that cannot be written: one clear error, status "failed", the earlier checkpoint
intact, and a rerun that resumes from it.

Two ways in: a disk too full for the next checkpoint (the free space reported low, checked
before any write starts) and an error inside orbax's write (as a full disk or a quota gives it).
"""

import errno
import json
import pathlib
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from tests.helpers import (
  checkpoint_params,
  mock_data,  # noqa: F401  (autouse: TFDS's mock data for every test here)
  pretrain_config,
)
from train.core import checkpointing, loop

ROOT = pathlib.Path(__file__).parents[2]


class FullDisk:
  """While `on`, the checkpoints' disk reports 1 KiB free to the saves of steps after `after`."""

  def __init__(self, monkeypatch, after: int):
    self.on, self.saving = True, 0
    real, save = shutil.disk_usage, checkpointing.Checkpointer.save

    def disk_usage(path):
      full = self.on and self.saving > after
      return real(path)._replace(free=1024) if full else real(path)

    def saving(checkpointer, step, *args):
      self.saving = step
      return save(checkpointer, step, *args)

    monkeypatch.setattr(checkpointing.shutil, "disk_usage", disk_usage)
    monkeypatch.setattr(checkpointing.Checkpointer, "save", saving)


def config():
  """Four steps, a checkpoint after each, the newest kept."""
  return pretrain_config(num_train_steps=4, keep_checkpoints=1)


def assert_failed_and_resumable(workdir: pathlib.Path, kept: int, free_space) -> None:
  summary = json.loads((workdir / "summary.json").read_text())
  assert summary["status"] == "failed" and "Cannot write the checkpoint" in summary["error"]
  assert summary["train"][-1]["step"] == kept + 1  # the curve up to the failed save is kept
  assert checkpointing.saved_steps(workdir / "checkpoints") == [kept]
  params = checkpoint_params(workdir, kept)  # the earlier checkpoint is whole
  assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(params))
  free_space()  # the same command then resumes from it and finishes
  resumed = loop.train_and_evaluate(config(), workdir)
  assert resumed["status"] == "completed" and resumed["step"] == 4
  assert [entry["step"] for entry in resumed["train"]] == [1, 2, 3, 4]


def test_a_checkpoint_that_cannot_fit_is_refused_before_it_is_written(tmp_path, monkeypatch):
  disk = FullDisk(monkeypatch, after=2)
  with pytest.raises(checkpointing.CheckpointWriteError) as error:
    loop.train_and_evaluate(config(), tmp_path / "run")
  message = str(error.value)
  assert f"checkpoint of step 3 to {tmp_path / 'run' / 'checkpoints'}" in message
  assert "0.0 MiB are free there" in message and "needs about" in message
  assert "keep_checkpoints" in message and "--workdir" in message
  # Nothing of step 3 was started: no unfinished folder beside the good checkpoint.
  assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["2"]

  def free_space():
    disk.on = False

  assert_failed_and_resumable(tmp_path / "run", 2, free_space)


def test_an_error_inside_orbaxs_write_gives_the_same_error(tmp_path, monkeypatch):
  manager_save, failing = checkpointing.ocp.CheckpointManager.save, [True]

  def save(self, step, *args, **kwargs):
    if failing[0] and step > 2:
      raise OSError(errno.ENOSPC, "No space left on device")
    return manager_save(self, step, *args, **kwargs)

  monkeypatch.setattr(checkpointing.ocp.CheckpointManager, "save", save)
  with pytest.raises(checkpointing.CheckpointWriteError, match=r"No space left on device"):
    loop.train_and_evaluate(config(), tmp_path / "run")
  assert_failed_and_resumable(tmp_path / "run", 2, lambda: failing.clear() or failing.append(False))


COMMAND = """
import runpy, shutil, sys
import tensorflow_datasets as tfds
import tensorflow_datasets.text.c4
from train.core import checkpointing

real = shutil.disk_usage
checkpointing.shutil.disk_usage = lambda path: real(path)._replace(free=1024)
sys.argv = ["train.main", *sys.argv[1:]]
with tfds.testing.mock_data(num_examples=48):
  runpy.run_module("train.main", run_name="__main__")
"""


def test_the_command_says_it_in_one_line(tmp_path, monkeypatch):
  flags = {
    "corpus": "c4",
    "tokenizer.vocab_size": 200,
    "max_len": 32,
    "mask_rate": 0.15,
    "batch_size": 8,
    "eval_batch_size": 8,
    "eval_examples": 16,
    "num_train_steps": 2,
    "checkpoint_every_steps": 1,
    "progress_bar": False,
    "mesh.data": 1,
  }
  args = [f"--config.{key}={value}" for key, value in flags.items()]
  result = subprocess.run(
    [sys.executable, "-c", COMMAND, "--config=configs/default.py", f"--workdir={tmp_path}", *args],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=600,
    check=False,
  )
  assert result.returncode == 1
  errors = [line for line in result.stderr.splitlines() if "Error" in line]
  assert errors[0].startswith("Error: Cannot write the checkpoint of step 1"), result.stderr
  assert "Traceback" not in result.stderr
