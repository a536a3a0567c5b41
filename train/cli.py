"""What the commands (`python -m train.<command>`) share: absl flags, one way to start, and
one parser of KEY=VALUE overrides.

Every command defines its flags at module level and ends with `cli.run(main)`; no command
imports another, so their flags never meet. Every command can join several processes (the
flags below; JAX detects TPU pods, SLURM and Open MPI by itself).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable, Iterable

from absl import app, flags, logging

from train.core import partitioning
from train.core.checkpointing import CheckpointWriteError

_COORDINATOR = flags.DEFINE_string(
  "coordinator_address", None, "HOST:PORT of process 0, to join several processes."
)
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "How many processes join.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index, 0 … n − 1.")


def run(main: Callable[[], None]) -> None:
  """Parses the flags, quietens the libraries' logs, joins the processes, then calls `main()`.

  A checkpoint that cannot be written ends the command with its one-line explanation (the
  checkpoints before it are intact) rather than a traceback.
  """

  def start(argv):
    if len(argv) > 1:
      raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not flags.FLAGS["verbosity"].present:
      logging.set_verbosity(logging.WARNING)  # orbax and tfds log much at INFO
    partitioning.join_processes(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    try:
      main()
    except CheckpointWriteError as error:  # a full disk: what to do, without a traceback
      sys.exit(f"Error: {error}")

  app.run(start)


def parse_overrides(pairs: Iterable[str], what: str = "--override") -> dict[str, object]:
  """`["key=value", …]` → {key: value}, each value a Python literal or else a bare string.

  Raises:
    ValueError: a pair has no "="; the message names `what` (the flag or option it came from).
  """
  overrides = {}
  for pair in pairs:
    key, sep, value = pair.partition("=")
    if not sep or not key:
      raise ValueError(f"{what} {pair!r}: use KEY=VALUE, e.g. dtype=float32.")
    try:
      overrides[key] = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      overrides[key] = value  # a bare string
  return overrides


def parse_model_name(name: str) -> tuple[str, dict[str, object]]:
  """ "head+field=value+…" (a `--models` entry) → (head, {field: value}).

  Raises:
    ValueError: an override is not field=value; the message names the entry.
  """
  head, *pairs = name.split("+")
  try:
    return head, parse_overrides(pairs)
  except ValueError as error:
    raise ValueError(f"--models {name!r}: write overrides as +field=value.") from error
