"""The training loop, `train_and_evaluate(config, workdir)`: what `python -m train.main` runs.

How a config flows: `checks` (keys, sizes, workdir, a resumed run's saved config) →
`experiment.build_experiment` (tokenizer, data, model, objective, mesh) → `state.init_fn` and
`partitioning.sharded_init` → restore from `checkpointing` or load pretrained weights → jitted
`state.train_step` each step, checkpoints and metrics on their cadence → `evaluation.evaluate`
on every split → `summary.json`. Every process runs the same loop; process 0 alone writes
files outside orbax.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
import time
from collections.abc import Callable

import jax
import ml_collections
from absl import logging
from flax import serialization
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm import tqdm

from mobius_jax.models.params import count_encoder_params, count_params
from mobius_jax.sharding import use_mesh
from train import files
from train.core import checks, evaluation, experiment, metrics, partitioning
from train.core import state as train_state
from train.core.checkpointing import Checkpointer, CheckpointWriteError, saved_steps
from train.core.signals import StopVote
from train.core.workdir import hold as hold_workdir
from train.data import input_pipeline


class NonFiniteLossError(FloatingPointError):
  """The loss, the gradients or the parameters became NaN or infinite; nothing of it was saved."""


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict:
  """Trains as `config` says, checkpointing into `workdir`, and returns the run's summary.

  A run resumes from the newest readable checkpoint in `workdir/checkpoints` (state, data
  position, RNG) if its saved config agrees (`checks.check_resume`). SIGTERM or SIGINT on any
  process saves a checkpoint and returns early (summary status "interrupted"). A non-finite
  step raises `NonFiniteLossError` and is never saved. `num_train_steps=0` only evaluates. The
  summary is also written to `workdir/summary.json`. While it runs, the run holds `workdir`: a
  second run there raises `workdir.WorkdirInUseError` at once, naming this one.
  """
  started = time.perf_counter()
  checks.check_config(config)
  workdir = checks.check_workdir(workdir)
  # One run per workdir: a second one stops here, naming this one (`train.core.workdir`).
  with hold_workdir(workdir), StopVote() as stop:
    return _run(config, workdir, stop, started)


def finished_summary(config: ml_collections.ConfigDict, workdir: str | pathlib.Path):
  """The summary of the run that finished in `workdir` with `config` (the same saved config,
  completed and evaluated at `num_train_steps`, its last checkpoint), read without restoring
  it; None where there is none (`train_and_evaluate` then trains, resumes or evaluates).

  Raises:
    ValueError: the workdir's run has another configuration (as `checks.check_resume`).
  """
  workdir = pathlib.Path(workdir)
  path, steps = workdir / "summary.json", saved_steps(workdir / "checkpoints")
  # Process 0 alone writes summary.json: on hosts without a shared workdir the processes could
  # decide differently, and one skipping the loop's collectives would hang the others.
  if jax.process_count() > 1 or not (
    steps and path.exists() and (workdir / "config.json").exists()
  ):
    return None
  if checks.check_resume(config, workdir / "config.json"):
    return None  # a key a resume allows has changed (say, eval_examples): evaluate again
  try:
    summary = files.read_json(path, "summary")
  except ValueError:
    return None
  done = summary.get("status") == "completed" and summary.get("eval")
  return summary if done and summary.get("step") == config.num_train_steps == steps[-1] else None


def _run(config, workdir: pathlib.Path, stop: StopVote, started: float) -> dict:
  """`train_and_evaluate` after the checks, with signals caught by `stop`."""
  primary = jax.process_index() == 0
  if saved_steps(workdir / "checkpoints") and (workdir / "config.json").exists():
    checks.check_resume(config, workdir / "config.json")
  if primary:
    files.write_text(workdir / "config.json", config.to_json_best_effort(indent=2))
  ex = experiment.build_experiment(config, workdir)
  init = train_state.init_fn(ex.model, ex.optimizer, config.max_len)
  state, state_sharding = partitioning.sharded_init(
    init, ex.mesh, jax.random.key(config.seed), rules=ex.rules
  )
  checkpointer = Checkpointer(workdir / "checkpoints", keep=config.keep_checkpoints)
  writer = metrics.MetricWriter(workdir, enabled=primary)
  progress = _Progress(history=[])
  try:
    try:
      state, data_state = _first_state(ex, state, state_sharding, checkpointer)
      earlier = _earlier_summary(workdir / "summary.json", int(state.step))
      progress.history = earlier.get("train", [])
      steps = _Steps.compile(ex, state_sharding)
      state = _train(ex, steps, state, data_state, checkpointer, writer, stop, progress)
    finally:
      checkpointer.close()
  except CheckpointWriteError as error:
    _record_failure(writer, ex, error, progress)
    raise
  results = {}
  if progress.status == "completed":
    results = _evaluate_splits(ex, steps, state)
    writer.write_scalars(
      int(state.step), {f"{split}/{k}": v for split, r in results.items() for k, v in r.items()}
    )
  summary = {
    "status": progress.status,
    "mode": config.mode,
    "model": config.model,
    "task": ex.name,
    "step": int(state.step),
    "parameters": count_params(state.params),
    "encoder_parameters": count_encoder_params(ex.model_config),
    # A call that ran no timed step (resuming a finished run) keeps the earlier calls' figures.
    "train_step_flops": earlier.get("train_step_flops")
    if progress.flops is None
    else progress.flops,
    "train": progress.history,
    "eval": results,
    "tokens_per_second": progress.tokens_per_second or earlier.get("tokens_per_second"),
    "wall_time_seconds": earlier.get("wall_time_seconds", 0.0) + time.perf_counter() - started,
  }
  writer.write_summary(summary)
  writer.close()
  return summary


def _record_failure(writer, ex: experiment.Experiment, error, progress: _Progress) -> None:
  """summary.json with status "failed", the error and the curve so far, where it can still be
  written."""
  summary = {"status": "failed", "mode": ex.config.mode, "model": ex.config.model, "task": ex.name}
  try:
    writer.write_summary({**summary, "error": str(error), "train": progress.history})
  except OSError as write_error:
    logging.warning("summary.json could not be written either (%s).", write_error)
  writer.close()


@dataclasses.dataclass
class _Progress:
  """What the training steps leave for the summary."""

  history: list  # the logged metrics, {"step": s, …} per log step
  status: str = "completed"  # or "interrupted"
  timed: tuple[float, int] | None = None  # (clock, step) after the first, compiling step
  flops: float | None = None  # XLA's count for one train step
  tokens_per_second: float | None = None  # of the steps after the first; None without any


def _train(ex, steps, state, data_state, checkpointer, writer, stop, progress: _Progress):
  """Runs the train steps from the state's step to `num_train_steps`: logs, checks finiteness,
  saves on the config's cadence, stops after a signal. Returns the state; what the summary
  needs goes into `progress`."""
  config, primary = ex.config, jax.process_index() == 0
  start_step = int(state.step)
  iterator = input_pipeline.iterate(ex.data.train, data_state)
  unchecked = []
  bar = tqdm(
    total=config.num_train_steps,
    initial=start_step,
    disable=not (config.progress_bar and primary),
    desc=f"{config.mode} {experiment.model_name(config)}",
    unit="step",
    dynamic_ncols=True,
  )
  try:
    for step in range(start_step, config.num_train_steps):
      batch = partitioning.shard_batch(next(iterator), steps.batch_sharding)
      rng = jax.random.fold_in(state.rng, step)
      with use_mesh(ex.mesh, ex.rules):
        state, step_metrics = steps.train(state, batch, rng)
      done = step + 1
      unchecked.append((done, step_metrics.pop("finite")))
      if step == start_step:  # the first step compiles: time the ones after it
        jax.block_until_ready(state)
        progress.timed = (time.perf_counter(), done)
        progress.flops = _step_flops(steps.train, state, batch, ex)
      interrupted = stop.stop_after(ex.mesh)
      due_save = done % config.checkpoint_every_steps == 0 or done == config.num_train_steps
      if done % config.log_every_steps == 0 or due_save or interrupted:
        unchecked = _check_finite(unchecked, checkpointer)
        if steps.diagnose is not None:
          with use_mesh(ex.mesh, ex.rules):
            step_metrics.update(steps.diagnose(state, batch, rng))
        _log(done, step_metrics, progress, writer, bar, ex)
      bar.update(1)
      if due_save or interrupted:
        checkpointer.save(done, serialization.to_state_dict(state), iterator.get_state())
      if interrupted:
        progress.status = "interrupted"
        break
  finally:
    bar.close()
  jax.block_until_ready(state)
  if progress.timed and int(state.step) > progress.timed[1]:
    elapsed = time.perf_counter() - progress.timed[0]
    timed_steps = int(state.step) - progress.timed[1]
    progress.tokens_per_second = ex.data.tokens_per_batch * timed_steps / elapsed
  return state


def _log(step: int, step_metrics: dict, progress: _Progress, writer, bar, ex) -> None:
  """Records a log step's metrics in the history, TensorBoard and the progress bar."""
  values = {k: float(v) for k, v in jax.device_get(step_metrics).items()}
  progress.history.append({"step": step, **values})
  writer.write_scalars(step, {f"train/{k}": v for k, v in values.items()})
  rate = bar.format_dict["rate"]  # steps per second, smoothed
  tokens = f"{rate * ex.data.tokens_per_batch:.0f}" if rate else "…"
  bar.set_postfix(loss=f"{values['loss']:.3f}", tokens_per_s=tokens)


def _earlier_summary(path: pathlib.Path, step: int) -> dict:
  """What earlier calls on this run left in its summary, when resuming at `step`: the logged
  entries up to `step`, their wall time, and the step's FLOPs and rate (a resumed run's
  summary speaks for the whole run); empty when starting, or the summary is missing or
  unreadable."""
  if step == 0 or not path.exists():
    return {}
  try:
    earlier = files.read_json(path, "summary")
  except ValueError:
    logging.warning("%s cannot be read: the summary's curve starts at step %d.", path, step)
    return {}
  return {
    "train": [entry for entry in earlier.get("train", []) if entry["step"] <= step],
    "wall_time_seconds": earlier.get("wall_time_seconds") or 0.0,
    "train_step_flops": earlier.get("train_step_flops"),
    "tokens_per_second": earlier.get("tokens_per_second"),
  }


def _step_flops(p_train_step, state, batch, ex: experiment.Experiment) -> float | None:
  """XLA's FLOP count of one train step (of the lowered program, for the whole mesh)."""
  with use_mesh(ex.mesh, ex.rules):
    cost = p_train_step.lower(state, batch, jax.random.fold_in(state.rng, 0)).cost_analysis()
  return float(cost["flops"]) if cost and "flops" in cost else None


@dataclasses.dataclass(frozen=True)
class _Steps:
  """The jitted steps of a run, with the shardings of their inputs."""

  train: Callable  # (state, batch, rng) → (state, metrics); the state donated
  evaluate: dict  # objective id → (state, batch) → sums; evaluations of one objective share it
  diagnose: Callable | None  # (state, batch, rng) → diagnostics, with `config.diagnostics`
  batch_sharding: NamedSharding

  @classmethod
  def compile(cls, ex: experiment.Experiment, state_sharding) -> _Steps:
    """Eval steps' and diagnostics' outputs are replicated: every process gets the sums over
    the whole global batch and all its predictions."""
    config = ex.config
    batch_sharding = partitioning.batch_sharding(ex.mesh)
    replicated = NamedSharding(ex.mesh, P())
    with use_mesh(ex.mesh, ex.rules):
      train = jax.jit(
        functools.partial(
          train_state.train_step, objective=ex.objective, accum_steps=config.grad_accum_steps
        ),
        in_shardings=(state_sharding, batch_sharding, replicated),
        out_shardings=(state_sharding, replicated),
        donate_argnums=0,
      )
      evaluate = {}
      for objective in {id(e.objective): e.objective for e in ex.evaluations}.values():
        step = functools.partial(
          train_state.eval_step, objective=objective, rng=jax.random.key(config.seed + 1)
        )
        evaluate[id(objective)] = jax.jit(
          step, in_shardings=(state_sharding, batch_sharding), out_shardings=replicated
        )
      diagnose = None
      if config.diagnostics:
        diagnose = jax.jit(
          functools.partial(train_state.diagnostics_step, objective=ex.objective),
          in_shardings=(state_sharding, batch_sharding, replicated),
          out_shardings=replicated,
        )
    return cls(train, evaluate, diagnose, batch_sharding)


def _evaluate_splits(ex: experiment.Experiment, steps: _Steps, state) -> dict:
  """{name: metrics} for every evaluation of the experiment."""
  with use_mesh(ex.mesh, ex.rules):
    return {
      e.name: evaluation.evaluate(
        steps.evaluate[id(e.objective)],
        state,
        e.rows,
        objective=e.objective,
        batch_size=ex.config.eval_batch_size,
        batch_sharding=steps.batch_sharding,
        buckets=ex.data.buckets,
      )
      for e in ex.evaluations
    }


def _first_state(ex: experiment.Experiment, state, state_sharding, checkpointer: Checkpointer):
  """(state, data position): the newest readable checkpoint's, else the fresh state with the
  pretrained backbone of `init_from` (fine-tuning), else the fresh state; position None."""
  config = ex.config
  if checkpointer.latest_step() is not None:
    abstract = jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, state_sharding
    )
    restored, data_state, _ = checkpointer.restore(
      serialization.to_state_dict(abstract), set_aside=True
    )
    return serialization.from_state_dict(state, restored), data_state
  if config.mode == "finetune" and config.init_from:
    backbone = experiment.load_backbone(
      state.params["backbone"],
      experiment.pretrained_backbone(config, ex.model_config, state.params["backbone"]),
      f"init_from={config.init_from!r}",
    )
    params = {**state.params, "backbone": backbone}
    return state.replace(params=jax.device_put(params, state_sharding.params)), None
  return state, None


def _check_finite(unchecked: list, checkpointer: Checkpointer) -> list:
  """Raises `NonFiniteLossError` at the first non-finite step of `unchecked` ((step, flag)
  pairs); returns the empty list of steps left to check."""
  flags = jax.device_get([flag for _, flag in unchecked])
  bad = [step for (step, _), ok in zip(unchecked, flags, strict=True) if not ok]
  if not bad:
    return []
  latest = checkpointer.latest_step()
  kept = (
    f"The last finite checkpoint is step {latest} in {checkpointer.directory}: lower the "
    "learning rate (or use float32) and rerun with --config.resume_with_changes=True to "
    "resume from it."
    if latest is not None
    else "No checkpoint was saved: lower the learning rate (or use float32) and rerun; the run "
    "starts afresh."
  )
  raise NonFiniteLossError(
    f"Non-finite loss, gradients or parameters at step {bad[0]}; that state was not saved. " + kept
  )
