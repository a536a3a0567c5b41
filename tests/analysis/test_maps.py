"""`mobius_jax.analysis.maps`: the maps found, counted and summarised on hand-built parameters,
where every count is known in advance (`known_maps`)."""

import dataclasses

import numpy as np
import pytest

import mobius_jax.analysis as mja
from tests.analysis.known_maps import CONFIG, LAYOUT


def test_mobius_maps_are_found_per_layer_and_head(params):
  maps = mja.mobius_maps(params, CONFIG)
  assert sorted(maps) == [0, 2]
  a, _, _, d = maps[2]
  assert a.shape == (2, 4)
  # Layer 2, head 0 holds 2z scaled: a / d = 2.
  np.testing.assert_allclose(a[0] / d[0], 2, rtol=1e-6)


def test_map_report_counts_are_exact(params):
  report = mja.map_report(params, CONFIG)
  assert [layer["layer"] for layer in report["layers"]] == [0, 2]
  for entry in report["layers"]:
    heads = LAYOUT[entry["layer"]]
    for h, head in enumerate(entry["heads"]):
      expected = {name: heads[h].count(name) for name in mja.maps.MOBIUS_TYPES}
      assert head["counts"] == expected, (entry["layer"], h)
    flat = [name for head in heads for name in head]
    assert entry["counts"] == {name: flat.count(name) for name in mja.maps.MOBIUS_TYPES}
    assert entry["shares"]["elliptic"] == pytest.approx(flat.count("elliptic") / 8)
  assert report["total"]["counts"]["hyperbolic"] == 5
  assert report["total"]["counts"]["degenerate"] == 0


def test_map_report_determinants_and_fixed_points():
  """One layer of known determinants: z → (a z)/1 has |det| = |a|, fixed points 0 and ∞."""
  config = dataclasses.replace(CONFIG, layout="MVV")
  a = np.array([1.0, 1.05, 2.0, 0.5, 1.0, 3.0, 1.0, 0.99])
  coefficients = np.zeros((4, 2, 8), np.float32)
  coefficients[0, 0], coefficients[3, 0] = a, 1.0
  params = {"encoder": {"layer_0": {"attention": {"query_mobius": {"coefficients": coefficients}}}}}
  (layer,) = mja.map_report(params, config, det_tol=0.1)["layers"]
  det = layer["determinant"]
  assert det["abs_max"] == pytest.approx(3.0) and det["abs_min"] == pytest.approx(0.5)
  assert det["near_one_share"] == 5 / 8  # 1, 1.05, 1, 1, 0.99
  # Maps with a ≠ 1 fix 0 and ∞ (one finite point each); the 3 identities fix no single point.
  assert layer["fixed_points"]["finite_share"] == pytest.approx(5 / 16)
  assert layer["fixed_points"]["unit_disk_share"] == 1.0


def test_representative_maps_give_one_per_type(params):
  chosen = mja.representative_maps(mja.mobius_maps(params, CONFIG))
  types = [label.rsplit(": ", 1)[1] for label, _ in chosen]
  assert types == ["identity", "parabolic", "elliptic", "hyperbolic", "loxodromic"]
  assert all(np.shape(x) == () for _, m in chosen for x in m)


def test_non_finite_maps_are_counted_apart_and_left_out_of_the_summaries():
  # Layer 0's map 0 gets a NaN, map 5 an infinity: two "non-finite" maps, out of the
  # determinant statistics and the pictures, and the plots have a colour for them.
  config = dataclasses.replace(CONFIG, layout="MVV")
  coefficients = np.zeros((4, 2, 8), np.float32)
  coefficients[0, 0], coefficients[3, 0] = 2.0, 1.0  # 2z: hyperbolic, |det| = 2
  coefficients[0, 0, 0], coefficients[2, 1, 5] = np.nan, np.inf
  params = {"encoder": {"layer_0": {"attention": {"query_mobius": {"coefficients": coefficients}}}}}
  maps = mja.mobius_maps(params, config)
  assert np.isnan(maps[0][0][0, 0]) and maps[0][2][1, 1] == complex(0, np.inf)  # no NaN added
  with np.errstate(invalid="ignore"):  # numpy's determinant of the NaN and infinite maps
    (layer,) = mja.map_report(params, config)["layers"]
    chosen = mja.representative_maps(maps)
  assert layer["counts"]["non-finite"] == 2 and layer["counts"]["hyperbolic"] == 6
  assert layer["determinant"]["abs_mean"] == pytest.approx(2.0)
  assert [label.rsplit(": ", 1)[1] for label, _ in chosen] == ["hyperbolic"]
  assert set(mja.plots.TYPE_COLORS) == set(mja.maps.MOBIUS_TYPES)


def test_parameters_without_an_encoder_are_refused():
  with pytest.raises(ValueError, match="hold no encoder"):
    mja.mobius_maps({"dense": {}}, CONFIG)
