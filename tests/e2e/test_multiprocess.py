"""Several processes, as on a pod: `python -m train.main` in 2 localhost processes × 4 CPU
devices, joined by JAX's distributed runtime (gloo collectives), against 1 process × 8.

Each run is a real command in subprocesses (hard timeouts, a free port each), with TFDS's mock
data in place. The same seed must give the same losses on any number of processes, one process
writes the summary, and a SIGTERM to one process stops both at one checkpoint.
"""

import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).parents[2]
TIMEOUT = 240  # seconds for one run; a hung collective fails the test instead of CI
# `python -m train.main ARGS`, with the mock data in place.
PROGRAM = (
  "import runpy, sys, tensorflow_datasets as tfds, tensorflow_datasets.text.c4, "
  "tensorflow_datasets.text.glue\n"
  "sys.argv = ['train.main', *sys.argv[1:]]\n"
  "with tfds.testing.mock_data(num_examples=48):\n"
  "  runpy.run_module('train.main', run_name='__main__', alter_sys=True)\n"
)
PRETRAIN = [
  "--config=configs/default.py",
  "--config.corpus=c4",
  "--config.tokenizer.vocab_size=200",
  "--config.max_len=32",
  "--config.batch_size=16",
  "--config.eval_batch_size=16",
  "--config.eval_examples=24",  # not a multiple of the batch: padded rows must not count
  "--config.log_every_steps=1",
  "--config.progress_bar=False",
  # The tests' own settings, whatever the main job chose: one evaluation, dropout on (its
  # random numbers must agree across processes too).
  "--config.mask_rate=0.15",
  "--config.model_overrides.hidden_dropout=0.1",
  "--config.model_overrides.attention_dropout=0.1",
]
FOUR = [*PRETRAIN, "--config.num_train_steps=4"]
SIX = [*PRETRAIN, "--config.num_train_steps=6"]
FINETUNE = [
  *PRETRAIN,
  "--config.mode=finetune",
  "--config.task=sst2",
  "--config.num_train_steps=3",
]


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def start(workdir, args, *, processes: int, devices: int, cache) -> list[subprocess.Popen]:
  """`python -m train.main` as `processes` processes with `devices` CPU devices each."""
  env = {
    **os.environ,
    "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
    "MOBIUS_JAX_DATA": str(cache),
  }
  join = []
  if processes > 1:
    join = [f"--coordinator_address=localhost:{free_port()}", f"--num_processes={processes}"]
  return [
    subprocess.Popen(
      [sys.executable, "-c", PROGRAM, f"--workdir={workdir}", *args, *join]
      + ([f"--process_id={i}"] if processes > 1 else []),
      cwd=ROOT,
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
    )
    for i in range(processes)
  ]


def finish(procs: list[subprocess.Popen]) -> dict:
  """Waits for every process to exit 0; returns the run's summary.json."""
  deadline = time.monotonic() + TIMEOUT
  outputs = []
  try:
    for proc in procs:
      outputs.append(proc.communicate(timeout=max(deadline - time.monotonic(), 1)))
  finally:
    for proc in procs:
      proc.kill()
  for proc, (_, stderr) in zip(procs, outputs, strict=True):
    assert proc.returncode == 0, stderr[-4000:]
  return outputs


def run(workdir, args, *, processes=2, devices=4, cache) -> dict:
  finish(start(workdir, args, processes=processes, devices=devices, cache=cache))
  return json.loads((workdir / "summary.json").read_text())


def losses(summary):
  return [entry["loss"] for entry in summary["train"]]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
  return tmp_path_factory.mktemp("cache")


def test_two_processes_pretrain_like_one_and_go_on_in_one(tmp_path, cache):
  one = run(tmp_path / "one", FOUR, processes=1, devices=8, cache=cache)
  two = run(tmp_path / "two", FOUR, cache=cache)
  np.testing.assert_allclose(losses(two), losses(one), rtol=1e-5)
  np.testing.assert_allclose(
    two["eval"]["validation"]["loss"], one["eval"]["validation"]["loss"], rtol=1e-5
  )
  # Process 0 alone writes: one summary, one TensorBoard file.
  assert len(list((tmp_path / "two").glob("events.out.tfevents.*"))) == 1
  # A checkpoint of 2 processes × 4 devices goes on in 1 process × 8 devices as the
  # 1-process run goes on.
  straight = run(tmp_path / "one", SIX, processes=1, devices=8, cache=cache)
  two_then_one = run(tmp_path / "two", SIX, processes=1, devices=8, cache=cache)
  np.testing.assert_allclose(losses(two_then_one), losses(straight), rtol=1e-5)


@pytest.mark.slow
def test_checkpoints_go_from_one_process_to_two_and_from_two_to_one_device(tmp_path, cache):
  run(tmp_path / "one", FOUR, processes=1, devices=8, cache=cache)
  run(tmp_path / "two", FOUR, cache=cache)
  shutil.copytree(tmp_path / "one", tmp_path / "straight")
  straight = run(tmp_path / "straight", SIX, processes=1, devices=8, cache=cache)
  one_then_two = run(tmp_path / "one", SIX, cache=cache)
  two_then_one_device = run(
    tmp_path / "two", [*SIX, "--config.mesh.data=1"], processes=1, devices=1, cache=cache
  )
  np.testing.assert_allclose(losses(one_then_two), losses(straight), rtol=1e-5)
  np.testing.assert_allclose(losses(two_then_one_device), losses(straight), rtol=1e-5)


def test_two_processes_fine_tune_like_one(tmp_path, cache):
  one = run(tmp_path / "one", FINETUNE, processes=1, devices=8, cache=cache)
  two = run(tmp_path / "two", FINETUNE, cache=cache)
  np.testing.assert_allclose(losses(two), losses(one), rtol=1e-5)
  for split in ("validation", "test"):
    if split in one["eval"]:
      assert two["eval"][split] == pytest.approx(one["eval"][split], rel=1e-5)


def test_sigterm_to_one_process_stops_both_at_one_checkpoint(tmp_path, cache):
  args = [*PRETRAIN, "--config.num_train_steps=12"]
  straight = run(tmp_path / "straight", args, cache=cache)
  workdir = tmp_path / "stopped"
  args.append("--config.checkpoint_every_steps=1")  # to see the run's progress
  procs = start(workdir, args, processes=2, devices=4, cache=cache)
  deadline = time.monotonic() + TIMEOUT
  while not (workdir / "checkpoints" / "1").exists():
    assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
    time.sleep(0.01)
  procs[1].send_signal(signal.SIGTERM)
  finish(procs)  # both exit cleanly
  stopped = json.loads((workdir / "summary.json").read_text())
  assert stopped["status"] == "interrupted" and 1 <= stopped["step"] < 12
  steps = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
  assert steps[-1] == stopped["step"]
  resumed = run(workdir, args, cache=cache)
  assert resumed["status"] == "completed" and resumed["step"] == 12
  # The resumed summary holds the whole curve: the stopped call's steps and its own.
  np.testing.assert_allclose(losses(resumed), losses(straight), rtol=1e-5)
