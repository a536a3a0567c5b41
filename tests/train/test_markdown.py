"""`markdown.table`: the header, the alignment line, one line per row; bad rows and alignments
are refused."""

import pytest

from train import markdown


def test_a_table_has_a_header_an_alignment_line_and_a_line_per_row():
  text = markdown.table(
    ("model", "seeds", "accuracy"), [("bert-tiny", 3, 0.75), ["mobius", 1, "n/a"]]
  )
  assert text.splitlines() == [
    "| model | seeds | accuracy |",
    "|---|---:|---:|",
    "| bert-tiny | 3 | 0.75 |",
    "| mobius | 1 | n/a |",
  ]
  assert not text.endswith("\n")


def test_the_first_column_is_left_aligned_and_the_others_right_unless_told():
  assert markdown.table(["a"]).splitlines() == ["| a |", "|---|"]  # no rows: the header only
  assert markdown.table(["a", "b", "c"], align="rlr").splitlines()[1] == "|---:|---|---:|"
  rows = iter([(1, 2)])  # any iterable of rows
  assert markdown.table(["x", "y"], rows, align="ll").splitlines() == [
    "| x | y |",
    "|---|---|",
    "| 1 | 2 |",
  ]


def test_a_row_of_another_length_is_refused():
  with pytest.raises(ValueError, match=r"A row of 3 cells in a table of 2 columns: \[1, 2, 3\]"):
    markdown.table(["x", "y"], [(1, 2), (1, 2, 3)])
  with pytest.raises(ValueError, match="A row of 1 cells in a table of 2 columns"):
    markdown.table(["x", "y"], [(1,)])


@pytest.mark.parametrize("align", ["l", "lrr", "lc", "LR"])
def test_an_alignment_not_one_l_or_r_per_column_is_refused(align):
  with pytest.raises(ValueError, match=rf"align='{align}': give 'l' or 'r' for each of the 2"):
    markdown.table(["x", "y"], [(1, 2)], align=align)
