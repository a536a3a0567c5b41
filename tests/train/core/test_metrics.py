"""Metric functions against scikit-learn and SciPy on random inputs; the writer's files."""

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from train.core import metrics

sklearn_metrics = pytest.importorskip("sklearn.metrics")
stats = pytest.importorskip("scipy.stats")

binary = hnp.arrays(np.int64, st.integers(2, 60), elements=st.integers(0, 1))
scores = hnp.arrays(
  np.float64,
  st.integers(3, 60),
  elements=st.floats(-5, 5, allow_nan=False).map(lambda x: round(x, 1)),
)


@given(binary, st.randoms())
def test_classification_metrics_agree_with_scikit_learn(labels, random):
  predictions = np.array([random.randint(0, 1) for _ in labels])
  assert metrics.accuracy(labels, predictions) == pytest.approx(
    sklearn_metrics.accuracy_score(labels, predictions)
  )
  assert metrics.f1(labels, predictions) == pytest.approx(
    sklearn_metrics.f1_score(labels, predictions, zero_division=0.0)
  )
  assert metrics.matthews_corrcoef(labels, predictions) == pytest.approx(
    sklearn_metrics.matthews_corrcoef(labels, predictions), abs=1e-12
  )


@given(scores, st.randoms())
def test_correlations_agree_with_scipy(labels, random):
  predictions = labels + np.array([random.choice([-1.0, 0.0, 0.5, 2.0]) for _ in labels])
  if np.ptp(labels) == 0 or np.ptp(predictions) == 0:
    return  # undefined for constant inputs (we return 0, SciPy NaN)
  assert metrics.pearson(labels, predictions) == pytest.approx(
    stats.pearsonr(labels, predictions)[0], abs=1e-9
  )
  # Rounded values make ties, which Spearman's ranks must average.
  assert metrics.spearman(labels, predictions) == pytest.approx(
    stats.spearmanr(labels, predictions)[0], abs=1e-9
  )


def test_compute_and_multiclass_accuracy():
  out = metrics.compute(("accuracy", "f1"), [0, 1, 2, 1], [0, 1, 1, 1])
  assert out == {"accuracy": 0.75, "f1": pytest.approx(0.8)}


def test_writer_writes_event_files_and_a_summary(tmp_path):
  writer = metrics.MetricWriter(tmp_path)
  writer.write_scalars(3, {"train/loss": 1.5})
  path = writer.write_summary({"final": {"loss": 1.5}})
  writer.close()
  assert any(p.name.startswith("events.out.tfevents") for p in tmp_path.iterdir())
  assert json.loads(path.read_text()) == {"final": {"loss": 1.5}}
