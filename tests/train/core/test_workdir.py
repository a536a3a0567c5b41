"""One run per workdir (`train.core.workdir`) and the lock files under it (`train.locks`): who
holds a lock, when a lock is stale, waiting, taking over, and processes racing for one.

The runs here are stand-ins (`loop._run` replaced): what is tested is the lock around them. Real
runs and real data caches shared by processes are in `tests/e2e/test_concurrency.py`.
"""

import dataclasses
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time

import jax
import pytest

from train import locks
from train.core import loop, workdir

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))


def dead_pid() -> int:
  """The id of a process that has exited."""
  process = subprocess.Popen([sys.executable, "-c", ""])
  process.wait()
  return process.pid


def write_lock(path, age: float = 0.0, **changes) -> locks.Holder:
  """A lock file at `path` held by this process, with `changes`, last refreshed `age` s ago."""
  holder = dataclasses.replace(locks.Holder.current(), **changes)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(holder.to_json())
  os.utime(path, (time.time() - age,) * 2)
  return holder


@pytest.fixture
def run(tmp_path, monkeypatch):
  """A workdir, and a `train_and_evaluate` whose run only records the lock it ran under (or
  raises what `run.raises` holds)."""
  directory = tmp_path / "run"
  seen = []

  def fake_run(*args, **kwargs):
    path = workdir.lock_path(directory)
    seen.append(json.loads(path.read_text()) if path.exists() else None)
    if run.raises is not None:
      raise run.raises
    return {"status": "completed"}

  monkeypatch.setattr(loop, "_run", fake_run)
  monkeypatch.setattr(loop.checks, "check_config", lambda config: None)
  run.raises, run.seen, run.directory = None, seen, directory
  return run


def test_a_run_holds_its_workdir_naming_itself_and_lets_go_at_the_end(run):
  before = time.time()
  assert loop.train_and_evaluate(None, run.directory) == {"status": "completed"}
  (holder,) = run.seen
  assert holder["host"] == socket.gethostname() and holder["pid"] == os.getpid()
  assert before - 1 <= holder["since"] <= time.time()
  assert "pytest" in holder["command"] or "py.test" in holder["command"]
  assert not workdir.lock_path(run.directory).exists()


@pytest.mark.parametrize(
  "error", [loop.NonFiniteLossError("at step 3"), KeyboardInterrupt(), ValueError("a key")]
)
def test_the_workdir_is_let_go_when_the_run_raises(run, error):
  run.raises = error
  with pytest.raises(type(error)):
    loop.train_and_evaluate(None, run.directory)
  assert run.seen[0]["pid"] == os.getpid()
  assert not workdir.lock_path(run.directory).exists()
  run.raises = None
  loop.train_and_evaluate(None, run.directory)  # free again


def test_a_workdir_held_by_a_live_process_is_refused_with_what_to_do(run):
  holder = write_lock(workdir.lock_path(run.directory))  # this very process: alive
  with pytest.raises(workdir.WorkdirInUseError) as error:
    loop.train_and_evaluate(None, run.directory)
  message = str(error.value)
  assert f"in use by another run: process {holder.pid} on host {holder.host} since " in message
  assert f"running `{holder.command}`" in message
  assert f"`kill {holder.pid}`" in message and "pass another --workdir" in message
  assert "rm " not in message  # it runs: nothing to remove
  assert run.seen == []  # the run never started
  assert json.loads(workdir.lock_path(run.directory).read_text())["token"] == holder.token


def test_a_lock_from_another_host_is_never_taken_over_and_says_how_to_remove_it(run):
  path = workdir.lock_path(run.directory)
  write_lock(path, age=2 * 86400, host="elsewhere")
  with pytest.raises(workdir.WorkdirInUseError) as error:
    loop.train_and_evaluate(None, run.directory)
  message = str(error.value)
  assert "process" in message and "on host elsewhere" in message
  assert "`kill " in message and " on elsewhere" in message
  assert "last refreshed 48.0 h ago" in message and message.endswith(f"rm {path}")
  assert path.exists()


@pytest.mark.parametrize(
  "gone",
  [
    pytest.param(lambda: {"pid": dead_pid()}, id="process exited"),
    pytest.param(lambda: {"start": "1"}, id="process id reused"),
    pytest.param(lambda: {"boot": "another boot"}, id="host restarted"),
  ],
)
def test_a_lock_whose_process_is_gone_is_taken_over_with_a_warning(run, caplog, gone):
  stale = write_lock(workdir.lock_path(run.directory), **gone())
  with caplog.at_level(logging.WARNING, logger="train.locks"):
    assert loop.train_and_evaluate(None, run.directory)["status"] == "completed"
  (warning,) = [r.getMessage() for r in caplog.records if r.name == "train.locks"]
  assert warning.startswith(f"Taking over the stale lock {workdir.lock_path(run.directory)}")
  assert f"held by process {stale.pid} on host {stale.host}" in warning
  assert warning.endswith("that process is gone.")
  assert run.seen[0]["token"] != stale.token and run.seen[0]["pid"] == os.getpid()


def test_an_unreadable_lock_is_taken_over_once_old_and_refused_while_young(run, caplog):
  path = workdir.lock_path(run.directory)
  path.parent.mkdir()
  path.write_text("{")
  with pytest.raises(workdir.WorkdirInUseError, match="cannot be read yet"):
    loop.train_and_evaluate(None, run.directory)
  os.utime(path, (time.time() - 120,) * 2)
  with caplog.at_level(logging.WARNING, logger="train.locks"):
    loop.train_and_evaluate(None, run.directory)
  assert "its file is unreadable" in caplog.text


def test_the_other_processes_of_a_run_take_no_lock(run, monkeypatch):
  """Process 0 holds the workdir for the run; processes 1… of it must not trip over that."""
  holder = write_lock(workdir.lock_path(run.directory))  # as process 0 of this run would
  monkeypatch.setattr(jax, "process_index", lambda: 1)
  assert loop.train_and_evaluate(None, run.directory)["status"] == "completed"
  assert json.loads(workdir.lock_path(run.directory).read_text())["token"] == holder.token


# --------------------------------------------------------------------- train.locks


def test_a_waiting_process_goes_on_when_the_holder_lets_go(tmp_path, caplog):
  path = tmp_path / "cache" / ".entry.lock"
  holder = subprocess.Popen(
    [
      sys.executable,
      "-c",
      "import sys, time; from train import locks\n"
      f"with locks.cache_lock({str(path)!r}, 'an entry'):\n"
      "  print('held', flush=True); time.sleep(1.5)\n",
    ],
    cwd=ROOT,
    stdout=subprocess.PIPE,
    text=True,
  )
  assert holder.stdout.readline() == "held\n"
  started = time.monotonic()
  with (
    caplog.at_level(logging.WARNING, logger="train.locks"),
    locks.cache_lock(path, "an entry") as lock,
  ):
    waited = time.monotonic() - started
    assert json.loads(path.read_text())["token"] == lock.holder.token
  assert holder.wait(30) == 0
  assert waited > 0.5
  assert f"Waiting for process {holder.pid} on host" in caplog.text
  assert not path.exists()


def test_a_cache_lock_from_another_host_is_stale_once_not_refreshed_for_long(tmp_path, caplog):
  path = tmp_path / ".entry.lock"
  write_lock(path, age=locks.STALE_AFTER_SECONDS - 60, host="elsewhere")
  with pytest.raises(locks.LockHeldError, match=r"held by process \d+ on host elsewhere"):
    locks.acquire(path, what="an entry", wait=False)
  os.utime(path, (time.time() - locks.STALE_AFTER_SECONDS - 60,) * 2)
  with caplog.at_level(logging.WARNING, logger="train.locks"), locks.cache_lock(path, "an entry"):
    pass
  assert "its host has not refreshed it for 16 min" in caplog.text


def test_a_holder_refreshes_its_lock(tmp_path, monkeypatch):
  monkeypatch.setattr(locks, "HEARTBEAT_SECONDS", 0.05)
  path = tmp_path / ".entry.lock"
  with locks.cache_lock(path, "an entry"):
    os.utime(path, (time.time() - 1000,) * 2)
    time.sleep(0.5)
    assert time.time() - path.stat().st_mtime < 5


def test_a_lock_taken_over_meanwhile_is_left_to_its_new_holder(tmp_path, caplog):
  path = tmp_path / ".entry.lock"
  with caplog.at_level(logging.WARNING, logger="train.locks"), locks.cache_lock(path, "an entry"):
    other = write_lock(path)
  assert json.loads(path.read_text())["token"] == other.token
  assert "was taken over by process" in caplog.text


_RACER = textwrap.dedent(
  """
  import os, sys, time
  from train import locks
  lock, inside, log = sys.argv[1:]
  for _ in range(5):
    with locks.cache_lock(lock, "an entry"):
      os.close(os.open(inside, os.O_CREAT | os.O_EXCL))  # fails if another holds it too
      with open(log, "a") as f:
        f.write(f"{os.getpid()}\\n")
      time.sleep(0.02)
      os.remove(inside)
  """
)


def test_processes_racing_for_a_stale_lock_hold_it_one_at_a_time(tmp_path):
  path, inside, log = tmp_path / ".entry.lock", tmp_path / "inside", tmp_path / "log"
  write_lock(path, pid=dead_pid())
  racers = [
    subprocess.Popen(
      [sys.executable, "-c", _RACER, str(path), str(inside), str(log)],
      cwd=ROOT,
      stderr=subprocess.PIPE,
      text=True,
    )
    for _ in range(3)
  ]
  for racer in racers:
    _, stderr = racer.communicate(timeout=120)
    assert racer.returncode == 0, stderr
  assert sorted(log.read_text().split()) == sorted([str(r.pid) for r in racers] * 5)
  assert sorted(p.name for p in tmp_path.iterdir()) == ["log"]


def test_threads_of_one_process_take_turns_too(tmp_path):
  path, inside, errors = tmp_path / ".entry.lock", tmp_path / "inside", []

  def work():
    try:
      for _ in range(3):
        with locks.cache_lock(path, "an entry"):
          os.close(os.open(inside, os.O_CREAT | os.O_EXCL))
          time.sleep(0.01)
          os.remove(inside)
    except Exception as error:
      errors.append(error)

  threads = [threading.Thread(target=work) for _ in range(3)]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join(60)
  assert errors == []
