"""The Markdown table every report and benchmark prints."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def table(header: Sequence[str], rows: Iterable[Sequence[object]] = (), *, align: str = "") -> str:
  """A Markdown table: `header`, the alignment line, then one line per row.

  Args:
    header: the column titles.
    rows: the cells of each row (anything `str` turns into text), as many as `header`.
    align: one letter per column, "l" left or "r" right; default the first column left and the
      others right (a name, then numbers).

  Raises:
    ValueError: a row or `align` does not have one entry per column.
  """
  align = align or "l" + "r" * (len(header) - 1)
  if len(align) != len(header) or set(align) - {"l", "r"}:
    raise ValueError(f"align={align!r}: give 'l' or 'r' for each of the {len(header)} columns.")
  lines = [_line(header), "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|"]
  for row in rows:
    row = list(row)
    if len(row) != len(header):
      raise ValueError(f"A row of {len(row)} cells in a table of {len(header)} columns: {row}.")
    lines.append(_line(row))
  return "\n".join(lines)


def _line(cells: Iterable[object]) -> str:
  return "| " + " | ".join(str(cell) for cell in cells) + " |"
