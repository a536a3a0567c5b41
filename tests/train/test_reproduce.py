"""The main job's table: one column per measure, mean ± std over seeds."""

from train import reproduce, tasks


def test_format_reports_mean_and_standard_deviation():
  assert reproduce.format_cell("test", [0.7]) == "0.700"
  assert reproduce.format_cell("test", [0.7, 0.8]) == "0.750 ± 0.071"
  assert reproduce.format_cell("tokens_per_second", [1000.4, 1200.0]) == "1100 ± 141"
  assert reproduce.format_cell("parameters", [1_540_000, 1_540_000]) == "1.54M"


def test_table_has_a_row_per_model(monkeypatch):
  monkeypatch.setattr(reproduce, "majority_baseline", lambda task: 0.5)
  row = dict.fromkeys(("mlm_accuracy", "validation", "test"), 0.6)
  row.update(parameters=1e6, tokens_per_second=100.0, wall_time_seconds=10.0)
  table = reproduce.format_table({"bert-tiny": [row, row]}, tasks.get_task("polarity"))
  lines = table.splitlines()
  assert lines[0].startswith("| model | params | MLM acc (val) | val accuracy | test accuracy")
  assert (
    lines[2]
    == "| bert-tiny | 1.00M | 0.600 ± 0.000 | 0.600 ± 0.000 | 0.600 ± 0.000 | 100 ± 0 | 10 ± 0 |"
  )
  assert lines[3].startswith("| majority class |")
