"""`mobius_jax.analysis.plots`: the figures are written as PNG files."""

import numpy as np
import pytest

import mobius_jax.analysis as mja
from tests.analysis.known_maps import CONFIG


def _is_png(path) -> bool:
  data = path.read_bytes()
  return data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000


def test_plots_write_png_files(params, tmp_path):
  report = mja.map_report(params, CONFIG)
  assert _is_png(mja.plot_type_shares(report, tmp_path / "types.png"))
  chosen = mja.representative_maps(mja.mobius_maps(params, CONFIG))
  assert _is_png(mja.plot_map_images(chosen, tmp_path / "maps.png"))
  ids = np.array([[2, 7, 8, 3]], np.int32)
  weights = [w[0] for w in mja.model_attention_weights(params, CONFIG, ids)]
  path = mja.plot_attention(weights, ["[CLS]", "a", "b", "[SEP]"], tmp_path / "sub" / "att.png")
  assert _is_png(path)


def test_plot_type_shares_needs_mobius_layers(tmp_path):
  with pytest.raises(ValueError, match="no Möbius layers"):
    mja.plot_type_shares({"layers": []}, tmp_path / "x.png")
