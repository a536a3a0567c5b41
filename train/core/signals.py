"""Stopping on SIGTERM or SIGINT, agreed by every process: `StopVote`."""

from __future__ import annotations

import functools
import signal

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P


class StopVote:
  """While open, SIGTERM or SIGINT on any process stops every process after the same step.

  Open it before any long work: a signal during set-up or compilation is kept, and the run
  stops after its first step.

  Each step every process votes with its own flag (`vote()`: one bool per device, reduced by a
  tiny jitted all-reduce, dispatched without waiting), and the loop reads the vote of the step
  before (`stop_after`): all processes read the same value at the same step, and the host still
  keeps a step in flight. Chosen over JAX's preemption sync point, which needs the distributed
  runtime and only hears SIGTERM: a vote works for one process as for many, and for Ctrl-C.
  """

  def __init__(self):
    self.signal: int | None = None
    self._previous: jax.Array | None = None
    self._handlers = {}

  def __enter__(self) -> StopVote:
    for sig in (signal.SIGTERM, signal.SIGINT):
      self._handlers[sig] = signal.signal(sig, self._receive)
    return self

  def __exit__(self, *exc_info) -> None:
    for sig, handler in self._handlers.items():
      signal.signal(sig, handler)

  def _receive(self, sig, frame) -> None:
    self.signal = sig

  def stop_after(self, mesh: Mesh) -> bool:
    """Votes for this step; True if the previous step's vote was to stop (on any process)."""
    flags = np.full(len(mesh.local_devices), self.signal is not None)
    votes = jax.make_array_from_process_local_data(NamedSharding(mesh, P(mesh.axis_names)), flags)
    vote = _any(votes, NamedSharding(mesh, P()))
    previous, self._previous = self._previous, vote
    return previous is not None and bool(previous)


@functools.partial(jax.jit, static_argnums=1)
def _any(votes: jax.Array, replicated: NamedSharding) -> jax.Array:
  return jax.lax.with_sharding_constraint(jnp.any(votes), replicated)
