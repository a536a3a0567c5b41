"""What a model is trained to do: BERT's masking, and one objective per kind of training.

An objective turns a batch into sums: `prepare(batch, rng)` (masking, for the masked LM),
`loss(params, batch, rng, train=...) -> (loss_sum, sums)` with `count` (examples or masked
tokens, also `count(batch)` before any loss) and, where it applies, `correct` and
`predictions`; `summarize(totals)` turns summed sums into means. Sums rather than means, so
that micro-batches, devices, evaluation batches and processes add up exactly before one
division (t5x's pattern of one loss per model kind).
Shapes: B batch, L length, P masked positions per row, V vocabulary, K labels.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from train.core import metrics
from train.data.tasks import Task
from train.data.tokenizer import PAD_ID


def max_predictions(rate: float, length: int) -> int:
  """The masked positions' buffer size P for rows of `length` tokens: ⌈rate · length⌉, even.

  Even because the last layer's attention then has P queries, and cuDNN's fused attention
  refuses an odd query length when it trains with a mask.
  """
  return min(length, 2 * math.ceil(rate * length / 2))


def mask_tokens(
  rng: jax.Array,
  input_ids: jax.Array,
  *,
  rate: float,
  max_predictions: int,
  mask_id: int,
  special_ids: tuple[int, ...],
  vocab_size: int,
):
  """BERT's masking: round(rate · n) of each row's n ordinary tokens, chosen uniformly.

  Of the chosen positions 80 % become [MASK], 10 % a random ordinary token, 10 % stay. The
  tokens of `special_ids` ([PAD], [UNK], [CLS], [SEP], [MASK], and a BERT vocabulary's
  [unusedN]) are never chosen and never drawn as replacements, as in Hugging Face's
  `DataCollatorForLanguageModeling`, which MosaicBERT used (it leaves out the [unusedN] draws).

  Args:
    input_ids: int `[B, L]`, all below `vocab_size`.
    max_predictions: P, the most positions chosen per row.
    special_ids: the tokenizer's special token ids (`train.data.tokenizer.special_ids`).
    vocab_size: the tokenizer's vocabulary size V (replacements are drawn below it).

  Returns:
    (masked input_ids `[B, L]`, positions `[B, P]`, labels `[B, P]`, weights `[B, P]`: 1 at
    the chosen positions, 0 where a row has fewer than P).
  """
  special = np.zeros(vocab_size, bool)  # a constant of the compiled step
  special[list(special_ids)] = True
  ordinary = np.flatnonzero(~special).astype(np.int32)
  choose, kind, replacement = jax.random.split(rng, 3)
  eligible = ~jnp.asarray(special)[input_ids]
  scores = jnp.where(eligible, jax.random.uniform(choose, input_ids.shape), -1.0)
  _, positions = jax.lax.top_k(scores, max_predictions)  # [B, P]
  count = jnp.round(rate * eligible.sum(axis=1, keepdims=True))
  weights = (jnp.arange(max_predictions) < count).astype(jnp.float32)
  labels = jnp.take_along_axis(input_ids, positions, axis=1)
  draw = jax.random.uniform(kind, positions.shape)
  random_tokens = jnp.asarray(ordinary)[
    jax.random.randint(replacement, positions.shape, 0, len(ordinary))
  ]
  new = jnp.where(draw < 0.8, mask_id, jnp.where(draw < 0.9, random_tokens, labels))
  new = jnp.where(weights > 0, new, labels)
  rows = jnp.arange(input_ids.shape[0])[:, None]
  return input_ids.at[rows, positions].set(new), positions, labels, weights


def summarize(totals: Mapping[str, float]) -> dict[str, float]:
  """Summed `loss_sum`, `count` (and `correct`) → mean loss (and accuracy)."""
  count = jnp.maximum(totals["count"], 1.0)
  means = {"loss": totals["loss_sum"] / count}
  if "correct" in totals:
    means["accuracy"] = totals["correct"] / count
  return means


def _rngs(rng: jax.Array, train: bool) -> dict:
  return {"dropout": rng} if train else {}


def _apply(model: nn.Module, params, diagnose: bool, *args, **kwargs):
  """(float32 outputs, {"diagnostics": what the layers sow} or {})."""
  if not diagnose:
    return model.apply({"params": params}, *args, **kwargs).astype(jnp.float32), {}
  out, sown = model.apply({"params": params}, *args, mutable=["diagnostics"], **kwargs)
  return out.astype(jnp.float32), {"diagnostics": sown.get("diagnostics", {})}


@dataclasses.dataclass(frozen=True)
class MaskedLMObjective:
  """Masked-LM pretraining: masks each batch, scores the masked tokens only."""

  model: nn.Module
  masking: Mapping  # `mask_tokens`' keyword arguments

  def prepare(self, batch, rng):
    """Masks the whole batch (before any split into micro-batches).

    A row of `weight` 0 (an evaluation batch's padding) has no masked token that counts.
    """
    ids, positions, labels, weights = mask_tokens(rng, batch["input_ids"], **self.masking)
    if "weight" in batch:
      weights = weights * batch["weight"][:, None]
    return {"input_ids": ids, "positions": positions, "labels": labels, "weights": weights}

  def count(self, batch):
    """The masked tokens that count in a prepared batch."""
    return batch["weights"].sum()

  def loss(self, params, batch, rng, *, train: bool, diagnose: bool = False):
    """(loss_sum, {count, correct}) over the masked tokens of a prepared batch; with
    `diagnose`, also what the layers sow into "diagnostics" (`sums["diagnostics"]`)."""
    ids, weights = batch["input_ids"], batch["weights"]
    logits, sown = _apply(
      self.model,
      params,
      diagnose,
      ids,
      attention_mask=ids != PAD_ID,
      masked_positions=batch["positions"],
      deterministic=not train,
      rngs=_rngs(rng, train),
    )  # [B, P, V]
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["labels"])
    # Correct where the label's logit is the largest. Not `argmax(logits) == label`: XLA:CPU
    # runs argmax over [B, P, V] as a slow two-operand reduction; the max is the one the
    # cross-entropy takes anyway. A tie counts as correct.
    label_logits = jnp.take_along_axis(logits, batch["labels"][..., None], axis=-1)[..., 0]
    correct = (label_logits >= logits.max(-1)) * weights
    return (losses * weights).sum(), {"count": self.count(batch), "correct": correct.sum(), **sown}

  def summarize(self, totals, predictions=None, labels=None) -> dict[str, float]:
    """Mean loss and accuracy over the masked tokens."""
    return {k: float(v) for k, v in summarize(totals).items()}


@dataclasses.dataclass(frozen=True)
class ClassificationObjective:
  """Fine-tuning on a classification or regression (K = 1) task; rows weigh `weight` (1)."""

  model: nn.Module
  task: Task

  def prepare(self, batch, rng):
    return batch

  def count(self, batch):
    """The examples that count: the sum of the rows' `weight` (1 each when absent)."""
    return self._weights(batch).sum()

  @staticmethod
  def _weights(batch):
    return batch.get("weight", jnp.ones(batch["input_ids"].shape[0]))

  def loss(self, params, batch, rng, *, train: bool, diagnose: bool = False):
    """(loss_sum, {count, correct?, predictions `[B]`}): cross-entropy, or squared error;
    `diagnose` as for `MaskedLMObjective.loss`."""
    logits, sown = _apply(
      self.model,
      params,
      diagnose,
      batch["input_ids"],
      attention_mask=batch["input_ids"] != PAD_ID,
      token_type_ids=batch["token_type_ids"],
      deterministic=not train,
      rngs=_rngs(rng, train),
    )  # [B, K]
    weights = self._weights(batch)
    sums = {"count": weights.sum()}
    if self.task.is_regression:
      predictions = logits[:, 0]
      losses = (predictions - batch["label"]) ** 2
    else:
      predictions = jnp.argmax(logits, -1)
      losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
      sums["correct"] = ((predictions == batch["label"]) * weights).sum()
    return (losses * weights).sum(), {**sums, "predictions": predictions, **sown}

  def summarize(self, totals, predictions=None, labels=None) -> dict[str, float]:
    """Mean loss (and accuracy), plus the task's metrics given all predictions and labels."""
    means = {k: float(v) for k, v in summarize(totals).items()}
    if predictions is not None:
      means.update(metrics.compute(self.task.metrics, np.asarray(labels), predictions))
    return means


Objective = MaskedLMObjective | ClassificationObjective
