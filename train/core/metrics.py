"""Evaluation metrics (GLUE's and the offline tasks'), and where they are written.

The metric functions run on the host, in numpy, on a whole split's labels and predictions.
`MetricWriter` writes TensorBoard event files (through tensorboardX, without TensorFlow) and a
JSON summary per run.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping

import numpy as np

from train import files


def accuracy(labels, predictions) -> float:
  return float(np.mean(np.asarray(labels) == np.asarray(predictions)))


def f1(labels, predictions) -> float:
  """F1 of the positive class (label 1), as GLUE reports it for MRPC and QQP."""
  labels, predictions = np.asarray(labels) == 1, np.asarray(predictions) == 1
  true_positives = np.sum(labels & predictions)
  denominator = np.sum(labels) + np.sum(predictions)
  return float(2 * true_positives / denominator) if denominator else 0.0


def matthews_corrcoef(labels, predictions) -> float:
  """Matthews correlation of binary labels (CoLA's metric); 0 where it is undefined."""
  labels, predictions = np.asarray(labels) == 1, np.asarray(predictions) == 1
  tp = float(np.sum(labels & predictions))
  tn = float(np.sum(~labels & ~predictions))
  fp = float(np.sum(~labels & predictions))
  fn = float(np.sum(labels & ~predictions))
  denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
  return float((tp * tn - fp * fn) / denominator) if denominator else 0.0


def pearson(labels, scores) -> float:
  labels, scores = np.asarray(labels, np.float64), np.asarray(scores, np.float64)
  labels, scores = labels - labels.mean(), scores - scores.mean()
  denominator = np.sqrt(np.sum(labels**2) * np.sum(scores**2))
  return float(np.sum(labels * scores) / denominator) if denominator else 0.0


def spearman(labels, scores) -> float:
  """Pearson correlation of the ranks (ties get their average rank)."""
  return pearson(_ranks(labels), _ranks(scores))


def _ranks(x) -> np.ndarray:
  x = np.asarray(x)
  _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
  # Rank of each distinct value: the mean of the 1-based positions its copies occupy.
  starts = np.cumsum(counts) - counts
  return (starts + (counts + 1) / 2)[inverse]


METRICS = {
  "accuracy": accuracy,
  "f1": f1,
  "matthews_corrcoef": matthews_corrcoef,
  "pearson": pearson,
  "spearman": spearman,
}


def compute(names: tuple[str, ...], labels, predictions) -> dict[str, float]:
  """{name: value} for the metrics `names` (keys of `METRICS`)."""
  return {name: METRICS[name](labels, predictions) for name in names}


class MetricWriter:
  """Scalars to TensorBoard event files under `logdir`, and one JSON summary at the end.

  Only process 0 writes (`enabled`); on the others every method does nothing.
  """

  def __init__(self, logdir: str | pathlib.Path, *, enabled: bool = True):
    self.logdir = pathlib.Path(logdir)
    self._writer = None
    if enabled:
      from tensorboardX import SummaryWriter  # imported here: only runs that log need it

      self._writer = SummaryWriter(str(self.logdir))

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    if self._writer is None:
      return
    for name, value in scalars.items():
      self._writer.add_scalar(name, float(value), step)
    self._writer.flush()

  def write_summary(self, summary: Mapping) -> pathlib.Path:
    """Writes `summary.json` (atomically) and returns its path."""
    path = self.logdir / "summary.json"
    if self._writer is not None:
      files.write_json(path, summary)
    return path

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()
