"""Fine-tuning train step tokens/s on a real checkpoint: ours against PyTorch's HF BERT.

From the same pretrained checkpoint (`--checkpoint`: all-MiniLM-L6-v2 by default, a 6-layer
BERT of 22.7 M parameters, or any Hugging Face BERT folder), per row length, these steps run
on the same batches, in the same process, interleaved (round robin):
  * ours: `SequenceClassifier` (2 labels) through `train.core.state.train_step`, jitted with
    the state's shardings and donated, as the training loop runs it; the optimiser is
    `train.core.optim.make_optimizer` of `configs/default.py:finetune` at the rate 5e-5
    (clipping at global norm 1, AdamW with betas (0.9, 0.98), eps 1e-6, weight decay 0.01
    except on biases and LayerNorm scales, linear warm-up over 10 % of the steps, then decay);
  * torch, N threads: `transformers.BertForSequenceClassification` in train mode, eager, at
    `torch.set_num_threads(N)`: forward with the labels (cross-entropy), backward,
    `clip_grad_norm_(…, 1.0)`, `torch.optim.AdamW` with the same hyperparameters, decay
    groups and schedule (`--torch_adamw`: its fused CPU kernel by default, PyTorch's fastest
    there), zero_grad. One model per N of `--torch_threads`: `os.cpu_count()` and 1 by
    default, since on a shared machine PyTorch's OpenMP threads wait for each other whenever
    another process holds a core, and 1 thread can be the faster.
Both start from the same weights: PyTorch loads the checkpoint and draws the new classifier
head (and BERT's pooler where the checkpoint has none), and ours converts that state dict
(`mobius_jax.models.hf.params_from_hf`). Dropout `--dropout` (0.1) in both, float32.

The batches are real rows of the polarity task (`train.data.input_pipeline`), tokenised by the
checkpoint's tokenizer: at length L, the training rows that fit in L tokens, shuffled and
batched by `training_dataset` and padded to L, as a length bucket L holds them; both models
get the same token ids, attention mask (id ≠ [PAD]), token types and labels, a new batch each
step. Tokens/s counts padded tokens, B × L per step; `÷ fastest torch` divides a row's by the
fastest PyTorch row's at that length. Compile time is the wall time of our
step's `jit(...).lower(...).compile()`. The first-step losses of both are printed: from the
same weights they differ only by dropout's random masks (with `--dropout 0`, by rounding).

transformers and torch are no dependencies of the project; install them into the benchmark's
environment (`pip install torch --index-url <PyTorch's CPU wheels>`, and transformers as for
`train_step.py`).

  python benchmarks/finetune_step.py --repeats 5      # all-MiniLM-L6-v2, 32 rows, L = 16, 32, 64
  python benchmarks/finetune_step.py --checkpoint /path/to/hf/folder --batch 2 --lengths 16
"""

from __future__ import annotations

import copy
import functools
import os
import pathlib
import time

import common  # first: it puts the repository root, with train/ and configs/, on sys.path
import jax
import numpy as np
from absl import app, flags

from configs import default as default_config
from mobius_jax.models import SequenceClassifier, hf
from mobius_jax.models.params import count_params
from mobius_jax.sharding import make_mesh, use_mesh
from train.core import optim, partitioning
from train.core import state as train_state
from train.core.objectives import ClassificationObjective
from train.data import input_pipeline, pretrained, tasks, tokenizer
from train.markdown import table

_CHECKPOINT = flags.DEFINE_string(
  "checkpoint", "minilm", "A name of train.data.pretrained.PRETRAINED, or a Hugging Face folder."
)
_BATCH = flags.DEFINE_integer("batch", 32, "Rows per step.")
_LENGTHS = flags.DEFINE_list("lengths", "16,32,64", "Row lengths L (length buckets) to time.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed steps of each model (the median counts).")
_DROPOUT = flags.DEFINE_float("dropout", 0.1, "Both models' dropout rate.")
_TORCH_THREADS = flags.DEFINE_list(
  "torch_threads",
  sorted({str(os.cpu_count()), "1"}, key=int, reverse=True),
  "PyTorch's thread counts (torch.set_num_threads), each timed as a model of its own.",
)
_TORCH_ADAMW = flags.DEFINE_enum(
  "torch_adamw", "fused", ["fused", "foreach", "for-loop"], "torch.optim.AdamW's implementation."
)

TASK = "polarity"
NUM_LABELS = 2


def optimizer_config():
  """`configs/default.py:finetune` at BERT's fine-tuning rate, 5e-5."""
  config = default_config.get_config("finetune")
  config.optimizer.learning_rate = 5e-5
  return config


def checkpoint_folder(spec: str) -> pathlib.Path:
  """The folder of config.json and model.safetensors of a checkpoint name or path."""
  if spec in pretrained.PRETRAINED:
    return hf.model_folder(pretrained.prepare(spec))
  return hf.model_folder(spec)


def checkpoint_tokenizer(folder: pathlib.Path) -> tokenizer.Tokenizer:
  """The checkpoint's tokenizer, as fine-tuning from it uses it: vocab.txt, else tokenizer.json."""
  checkpoint = hf.load_checkpoint(folder, weights=False)
  if checkpoint.vocab_file is not None:
    return tokenizer.bert_tokenizer(str(checkpoint.vocab_file))
  return tokenizer.hub_tokenizer(checkpoint.tokenizer_file)


def task_batches(rows: dict, batch: int, length: int, count: int) -> list[dict[str, np.ndarray]]:
  """`count` training batches of the rows that fit in `length` tokens, padded to `length`.

  Args:
    rows: the task's rows (`input_pipeline.finetuning_arrays`), `[N, max_len]` and `[N]`.

  Returns:
    dicts of `input_ids`, `token_type_ids` int32 `[batch, length]` and `label` int32 `[batch]`.
  """
  fits = input_pipeline.token_lengths(rows) <= length
  if fits.sum() < batch:
    raise ValueError(f"Only {fits.sum()} rows of {TASK} fit in {length} tokens: use a longer one.")
  subset = {key: value[fits] for key, value in rows.items()}
  dataset = input_pipeline.training_dataset(subset, batch, seed=0, buckets=(length,))
  return [dataset[i] for i in range(count)]


class OurRunner:
  """Our compiled step and its state; each call runs one step on the next batch and blocks."""

  def __init__(self, compiled, state, batches, mesh):
    self.compiled, self.state, self.batches, self.mesh = compiled, state, batches, mesh
    self.rng, self.steps, self.losses = jax.random.key(1), 0, []

  def __call__(self):
    batch = self.batches[self.steps % len(self.batches)]
    with use_mesh(self.mesh):
      self.state, metrics = self.compiled(
        self.state, batch, jax.random.fold_in(self.rng, self.steps)
      )
    self.steps += 1
    self.losses.append(metrics["loss"])
    jax.block_until_ready(self.state)


def our_runner(folder, state_dict: dict, batches: list, dropout: float) -> tuple[OurRunner, float]:
  """Our step from `state_dict` (PyTorch's, as numpy arrays), compiled for `batches`' shape, and
  the seconds the compilation took."""
  checkpoint = hf.load_checkpoint(folder, weights=False)
  config = hf.config_from_hf(checkpoint.config, hidden_dropout=dropout, attention_dropout=dropout)
  model = SequenceClassifier(config, NUM_LABELS)
  objective = ClassificationObjective(model, tasks.get_task(TASK))
  optimizer = optim.make_optimizer(optimizer_config())
  mesh = make_mesh(1, 1, 1, devices=jax.devices()[:1])
  length = batches[0]["input_ids"].shape[1]
  init = train_state.init_fn(model, optimizer, length)
  state, shardings = partitioning.sharded_init(init, mesh, jax.random.key(0))
  params = hf.params_from_hf(state_dict, config)
  if jax.tree.structure(params) != jax.tree.structure(state.params):
    raise ValueError(f"{folder}: its state dict does not give a BERT classifier's parameters.")
  state = state.replace(params=jax.device_put(params, shardings.params))
  batch_sharding = partitioning.batch_sharding(mesh)
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  step = jax.jit(
    functools.partial(train_state.train_step, objective=objective),
    in_shardings=(shardings, batch_sharding, replicated),
    out_shardings=(shardings, replicated),
    donate_argnums=0,
  )
  batches = [jax.device_put(b, batch_sharding) for b in batches]
  start = time.perf_counter()
  with use_mesh(mesh):
    compiled = step.lower(state, batches[0], jax.random.key(0)).compile()
  return OurRunner(compiled, state, batches, mesh), time.perf_counter() - start


def torch_model(folder, dropout: float):
  """HF's `BertForSequenceClassification` of the checkpoint with a new 2-label head drawn from
  seed 0, in train mode."""
  import torch
  import transformers

  transformers.logging.set_verbosity_error()  # not the "newly initialised head" warning
  torch.manual_seed(0)
  return transformers.BertForSequenceClassification.from_pretrained(
    folder,
    num_labels=NUM_LABELS,
    hidden_dropout_prob=dropout,
    attention_probs_dropout_prob=dropout,
    attn_implementation="sdpa",
  ).train()


class TorchRunner:
  """One PyTorch fine-tuning step per call: forward with the labels, backward, clipping, AdamW
  and its schedule, zero_grad; on a copy of `model`."""

  def __init__(self, model, batches: list, adamw: str, threads: int):
    import torch
    import transformers

    self.torch, self.model, self.threads = torch, copy.deepcopy(model), threads
    self.batches = [
      {
        "input_ids": torch.from_numpy(b["input_ids"]).long(),
        "attention_mask": torch.from_numpy(b["input_ids"] != tokenizer.PAD_ID).long(),
        "token_type_ids": torch.from_numpy(b["token_type_ids"]).long(),
        "labels": torch.from_numpy(b["label"]).long(),
      }
      for b in batches
    ]
    config = optimizer_config()
    opt = config.optimizer
    # Ours' no_decay in PyTorch's names: biases and LayerNorm weights (ours' "scale").
    decayed, kept = [], []
    for name, param in self.model.named_parameters():
      (kept if name.endswith("bias") or "LayerNorm" in name else decayed).append(param)
    groups = [
      {"params": decayed, "weight_decay": opt.weight_decay},
      {"params": kept, "weight_decay": 0.0},
    ]
    kind = {"fused": {"fused": True}, "foreach": {"foreach": True}, "for-loop": {"foreach": False}}
    self.optimizer = torch.optim.AdamW(
      groups, lr=opt.learning_rate, betas=(opt.b1, opt.b2), eps=opt.eps, **kind[adamw]
    )
    # optax's warm-up from 0 and linear decay to 0 (`optim.learning_rate_schedule`).
    warmup = int(opt.warmup_ratio * config.num_train_steps)
    self.schedule = transformers.get_linear_schedule_with_warmup(
      self.optimizer, warmup, config.num_train_steps
    )
    self.grad_clip, self.steps, self.losses = opt.grad_clip, 0, []

  def __call__(self):
    self.torch.set_num_threads(self.threads)
    loss = self.model(**self.batches[self.steps % len(self.batches)]).loss
    loss.backward()
    self.torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
    self.optimizer.step()
    self.schedule.step()
    self.optimizer.zero_grad()
    self.steps += 1
    self.losses.append(loss.item())


def main(argv):
  common.start(argv)
  import torch

  batch, repeats, lengths = _BATCH.value, _REPEATS.value, [int(n) for n in _LENGTHS.value]
  threads = [int(n) for n in _TORCH_THREADS.value]
  folder, task = checkpoint_folder(_CHECKPOINT.value), tasks.get_task(TASK)
  model = torch_model(folder, _DROPOUT.value)
  state_dict = {name: value.detach().numpy() for name, value in model.state_dict().items()}
  rows = input_pipeline.finetuning_arrays(
    task, task.train_split, checkpoint_tokenizer(folder), max(lengths)
  )
  parameters = sum(p.numel() for p in model.parameters())
  print(
    f"# {common.machine()}  torch {torch.__version__}, AdamW {_TORCH_ADAMW.value}; "
    f"{folder.name}: {parameters / 1e6:.1f} M parameters, float32, dropout {_DROPOUT.value}, "
    f"{TASK} rows, batch {batch}, median of {repeats}"
  )
  header = ["length", "model", "compile s", "step ms", "tokens/s", "÷ fastest torch tokens/s"]
  table_rows = []
  for length in lengths:
    batches = task_batches(rows, batch, length, repeats + 1)  # a warm-up step, then the timed
    ours, compile_s = our_runner(folder, state_dict, batches, _DROPOUT.value)
    if count_params(ours.state.params) != parameters:
      raise ValueError(
        f"Ours has {count_params(ours.state.params)} parameters, torch {parameters}."
      )
    runners = {"ours": ours}
    for n in threads:
      name = f"torch, {n} thread{'s' if n > 1 else ''}"
      runners[name] = TorchRunner(model, batches, _TORCH_ADAMW.value, n)
    t = common.time_interleaved(runners, repeats)
    fastest = min(t[name] for name in runners if name != "ours")
    for name in runners:
      compiled = f"{compile_s:.1f}" if name == "ours" else "–"
      tokens_per_s, ratio = f"{batch * length / t[name]:.0f}", f"{fastest / t[name]:.2f}×"
      table_rows.append([str(length), name, compiled, f"{1e3 * t[name]:.0f}", tokens_per_s, ratio])
      common.progress(table_rows[-1])
    first = ", ".join(f"{name} {float(r.losses[0]):.4f}" for name, r in runners.items())
    print(f"# length {length}: first-step losses {first}", flush=True)
  print(table(header, table_rows, align="rl" + "r" * 4))


if __name__ == "__main__":
  app.run(main)
