"""`signals.StopVote`: a signal is voted at the step it arrives and read at the next, on every
device of the mesh; the previous handlers come back."""

import os
import signal

import pytest

from mobius_jax.sharding import make_mesh
from train.core import signals


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_after_the_next_step_and_the_handlers_come_back(sig):
  mesh = make_mesh(data=2, fsdp=2, tensor=2)
  before = signal.getsignal(sig)
  with signals.StopVote() as stop:
    assert signal.getsignal(sig) != before
    assert not stop.stop_after(mesh) and not stop.stop_after(mesh)
    os.kill(os.getpid(), sig)
    assert stop.signal == sig
    assert not stop.stop_after(mesh)  # this step votes to stop; the loop reads it a step later
    assert stop.stop_after(mesh) and stop.stop_after(mesh)
  assert signal.getsignal(sig) == before


def test_a_signal_before_the_first_step_stops_after_it():
  mesh = make_mesh(data=1, devices=make_mesh().devices.flat[:1])
  with signals.StopVote() as stop:
    os.kill(os.getpid(), signal.SIGTERM)  # during set-up or compilation
    assert not stop.stop_after(mesh)
    assert stop.stop_after(mesh)
