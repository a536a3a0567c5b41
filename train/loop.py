"""The training loop, `train_and_evaluate(config, workdir)`: what `python -m train.main` runs.

How a config flows: `checks` (keys, sizes, workdir) → `experiment.build_experiment` (tokenizer,
data, model, objective, mesh) → `state.init_fn` and `partitioning.sharded_init` → restore from
`checkpointing` or load pretrained weights → jitted `state.train_step` each step, checkpoints
and metrics on their cadence → `evaluation.evaluate` on every split → `summary.json`.
"""

from __future__ import annotations

import contextlib
import functools
import math
import pathlib
import signal
import time
from collections.abc import Iterator

import jax
import ml_collections
from flax import serialization
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm import tqdm

from mobius_jax.models.params import count_params
from mobius_jax.sharding import use_mesh
from train import checks, evaluation, experiment, input_pipeline, metrics, partitioning
from train import state as train_state
from train.checkpointing import Checkpointer


class NonFiniteLossError(FloatingPointError):
  """The loss or the gradients became NaN or infinite; the last good checkpoint is kept."""


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict:
  """Trains as `config` says, checkpointing into `workdir`, and returns the run's summary.

  A run resumes from the latest checkpoint in `workdir/checkpoints` (state, data position,
  RNG). SIGTERM or SIGINT saves a checkpoint and returns early (summary status
  "interrupted"). The summary is also written to `workdir/summary.json`.
  """
  started = time.perf_counter()
  workdir = pathlib.Path(workdir)
  checks.check_workdir(workdir)
  checks.check_config(config)
  (workdir / "config.json").write_text(config.to_json_best_effort(indent=2))
  ex = experiment.build_experiment(config, workdir)
  init = train_state.init_fn(ex.model, ex.optimizer, config.max_len)
  state, state_sharding = partitioning.sharded_init(
    init, ex.mesh, jax.random.PRNGKey(config.seed), rules=ex.rules
  )
  checkpointer = Checkpointer(
    workdir / "checkpoints", every_steps=config.checkpoint_every_steps, keep=config.keep_checkpoints
  )
  state, data_state = _first_state(ex, state, state_sharding, checkpointer)
  start_step = int(state.step)

  batch_sharding = partitioning.batch_sharding(ex.mesh)
  p_train_step, p_eval_step = _jit_steps(ex, state_sharding, batch_sharding)
  writer = metrics.MetricWriter(workdir)
  iterator = input_pipeline.iterate(ex.data.train, data_state)

  def save(step, *, force=False):
    checkpointer.save(step, serialization.to_state_dict(state), iterator.get_state(), force=force)

  history, status, timed, step_metrics = [], "completed", None, None
  progress = tqdm(
    total=config.num_train_steps,
    initial=start_step,
    disable=not config.progress_bar,
    desc=f"{config.mode} {config.model}",
    unit="step",
    dynamic_ncols=True,
  )
  try:
    with _stop_signals() as stop:
      for step in range(start_step, config.num_train_steps):
        if stop["signal"] is not None:
          status = "interrupted"
          break
        batch = partitioning.shard_batch(next(iterator), batch_sharding)
        with use_mesh(ex.mesh, ex.rules):
          state, step_metrics = p_train_step(state, batch, jax.random.fold_in(state.rng, step))
        done = step + 1
        if step == start_step:  # the first step compiles: time the ones after it
          jax.block_until_ready(state)
          timed = (time.perf_counter(), done)
        last = done == config.num_train_steps
        if done % config.log_every_steps == 0 or done % config.checkpoint_every_steps == 0 or last:
          step_metrics = _finite(jax.device_get(step_metrics), done, checkpointer.directory)
          history.append({"step": done, **step_metrics})
          writer.write_scalars(done, {f"train/{k}": v for k, v in step_metrics.items()})
          rate = progress.format_dict["rate"]  # steps per second, smoothed
          tokens = f"{rate * ex.data.tokens_per_batch:.0f}" if rate else "…"
          progress.set_postfix(loss=f"{step_metrics['loss']:.3f}", tokens_per_s=tokens)
        progress.update(1)
        save(done, force=last)
      if status == "interrupted" and step_metrics is not None:
        _finite(jax.device_get(step_metrics), int(state.step), checkpointer.directory)
        save(int(state.step), force=True)
  finally:
    progress.close()
    checkpointer.close()
  jax.block_until_ready(state)
  tokens_per_second = None
  if timed and int(state.step) > timed[1]:
    elapsed = time.perf_counter() - timed[0]
    tokens_per_second = ex.data.tokens_per_batch * (int(state.step) - timed[1]) / elapsed

  results = {}
  if status == "completed":
    results = _evaluate_splits(ex, p_eval_step, state, batch_sharding)
    writer.write_scalars(
      int(state.step), {f"{split}/{k}": v for split, r in results.items() for k, v in r.items()}
    )
  summary = {
    "status": status,
    "mode": config.mode,
    "model": config.model,
    "task": ex.name,
    "step": int(state.step),
    "parameters": count_params(state.params),
    "train": history,
    "eval": results,
    "tokens_per_second": tokens_per_second,
    "wall_time_seconds": time.perf_counter() - started,
  }
  writer.write_summary(summary)
  writer.close()
  return summary


def _jit_steps(ex: experiment.Experiment, state_sharding, batch_sharding):
  """The jitted train step (state donated) and eval step, laid out on the mesh."""
  replicated = NamedSharding(ex.mesh, P())
  config = ex.config
  with use_mesh(ex.mesh, ex.rules):
    p_train_step = jax.jit(
      functools.partial(
        train_state.train_step, objective=ex.objective, accum_steps=config.grad_accum_steps
      ),
      in_shardings=(state_sharding, batch_sharding, replicated),
      out_shardings=(state_sharding, replicated),
      donate_argnums=0,
    )
    p_eval_step = jax.jit(
      functools.partial(
        train_state.eval_step, objective=ex.objective, rng=jax.random.PRNGKey(config.seed + 1)
      ),
      in_shardings=(state_sharding, batch_sharding),
    )
  return p_train_step, p_eval_step


def _evaluate_splits(ex: experiment.Experiment, p_eval_step, state, batch_sharding) -> dict:
  """{split: metrics} for every evaluation split of the experiment's data."""
  with use_mesh(ex.mesh, ex.rules):
    return {
      split: evaluation.evaluate(
        p_eval_step,
        state,
        rows,
        objective=ex.objective,
        batch_size=ex.config.eval_batch_size,
        batch_sharding=batch_sharding,
      )
      for split, rows in ex.data.eval_splits.items()
    }


def _first_state(ex: experiment.Experiment, state, state_sharding, checkpointer: Checkpointer):
  """(state, data position): the latest checkpoint's, else the fresh state with the pretrained
  backbone of `init_from` (fine-tuning), else the fresh state; the position None to start."""
  config = ex.config
  if checkpointer.latest_step() is not None:
    abstract = jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, state_sharding
    )
    restored, data_state = checkpointer.restore(serialization.to_state_dict(abstract))
    return serialization.from_state_dict(state, restored), data_state
  if config.mode == "finetune" and config.init_from:
    backbone = experiment.load_backbone(
      state.params["backbone"],
      experiment.pretrained_backbone(config, ex.model_config),
      f"init_from={config.init_from!r}",
    )
    params = {**state.params, "backbone": backbone}
    return state.replace(params=jax.device_put(params, state_sharding.params)), None
  return state, None


@contextlib.contextmanager
def _stop_signals() -> Iterator[dict]:
  """While open, SIGTERM and SIGINT set `stop["signal"]` instead of ending the process."""
  stop = {"signal": None}
  handlers = {
    sig: signal.signal(sig, lambda sig, _: stop.update(signal=sig))
    for sig in (signal.SIGTERM, signal.SIGINT)
  }
  try:
    yield stop
  finally:
    for sig, handler in handlers.items():
      signal.signal(sig, handler)


def _finite(step_metrics: dict, step: int, checkpoints: pathlib.Path) -> dict[str, float]:
  """The metrics as floats; raises `NonFiniteLossError` if any is NaN or infinite."""
  values = {k: float(v) for k, v in step_metrics.items()}
  if not all(math.isfinite(v) for v in values.values()):
    raise NonFiniteLossError(
      f"Non-finite loss or gradients at step {step}: {values}. The last good checkpoint in "
      f"{checkpoints} is kept; lower the learning rate or use float32, then resume."
    )
  return values
