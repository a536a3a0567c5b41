"""Analysis functions on hand-built parameters, where every count is known in advance."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mobius_jax.analysis as mja
from mobius_jax.models import MaskedLM, ModelConfig

# Three layers M V M, 4 heads of 4 dims, the first 2 heads Möbius: 8 maps per Möbius layer.
CONFIG = ModelConfig(
  hidden_size=16,
  num_heads=4,
  intermediate_size=32,
  num_layers=3,
  vocab_size=40,
  max_position_embeddings=16,
  layout="MVM",
  num_mobius_heads=2,
)

# Textbook maps (a, b, c, d); each type is kept under scaling, so they are scaled below.
TEXTBOOK = {
  "identity": (1, 0, 0, 1),
  "parabolic": (1, 1, 0, 1),  # z + 1
  "elliptic": (np.exp(0.7j), 0, 0, 1),  # rotation
  "hyperbolic": (2, 0, 0, 1),  # 2z
  "loxodromic": (1 + 1j, 0, 0, 1),
}
# The type of each (layer, head, dim).
LAYOUT = {
  0: [
    ["identity", "parabolic", "parabolic", "hyperbolic"],
    ["elliptic", "elliptic", "elliptic", "loxodromic"],
  ],
  2: [
    ["hyperbolic", "hyperbolic", "hyperbolic", "hyperbolic"],
    ["loxodromic", "identity", "parabolic", "elliptic"],
  ],
}


@pytest.fixture(scope="module")
def params():
  """Initialised MaskedLM parameters with the maps of LAYOUT, each matrix scaled by λ."""
  model = MaskedLM(CONFIG)
  params = nn.meta.unbox(model.init(jax.random.PRNGKey(0), jnp.zeros((1, 8), jnp.int32)))
  params = jax.tree.map(np.asarray, params["params"])
  rng = np.random.default_rng(0)
  for layer, heads in LAYOUT.items():
    names = [name for head in heads for name in head]
    scale = rng.uniform(0.5, 2.0, len(names)) * np.exp(1j * rng.uniform(0, 6, len(names)))
    m = np.array([TEXTBOOK[name] for name in names], np.complex128).T * scale  # [4, 8]
    coefficients = np.stack([m.real, m.imag], axis=1).astype(np.float32)  # [4, 2, 8]
    attention = params["backbone"]["encoder"][f"layer_{layer}"]["attention"]
    attention["query_mobius"]["coefficients"] = coefficients
  return params


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


def test_head_kinds_follow_the_layout():
  assert mja.head_kinds(CONFIG) == [
    ["mobius", "mobius", "complex", "complex"],
    ["vanilla"] * 4,
    ["mobius", "mobius", "complex", "complex"],
  ]


def test_attention_weights_are_distributions_over_real_keys(params):
  ids = np.array([[2, 7, 8, 9, 3, 0], [2, 5, 3, 0, 0, 0]], np.int32)
  mask = ids != 0
  weights = mja.attention_weights(params, CONFIG, ids, attention_mask=mask)
  assert len(weights) == 3
  for w in weights:
    assert w.shape == (2, 4, 6, 6)
    np.testing.assert_allclose(w.sum(-1), 1, rtol=1e-5)
    assert np.all(w[1, :, :, 3:] < 1e-6)  # padded keys get no weight


def test_attention_statistics_of_uniform_and_one_hot_heads():
  config = dataclasses.replace(CONFIG, num_layers=1, layout="M")
  mask = np.array([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0]])
  w = np.zeros((2, 4, 5, 5))
  for b, n in enumerate(mask.sum(1)):
    w[b, 0, :, :n] = 1 / n  # head 0: uniform over the real keys
    w[b, 1:, :, 0] = 1.0  # heads 1-3: all weight on the first token
  stats = mja.attention_statistics([w], mask, config)
  by_head = {h["head"]: h for h in stats["heads"]}
  assert by_head[0]["normalized_entropy"] == pytest.approx(1.0)
  assert by_head[0]["entropy"] == pytest.approx((4 * np.log(4) + 2 * np.log(2)) / 6)
  assert by_head[0]["near_zero_share"] == 0.0
  assert by_head[1]["entropy"] == 0.0
  # Of the 16 + 4 real pairs, all but one per query (4 + 2) are zero.
  assert by_head[1]["near_zero_share"] == pytest.approx(14 / 20)
  assert stats["by_kind"]["mobius"]["heads"] == 2
  assert stats["by_kind"]["mobius"]["near_zero_share"] == pytest.approx(7 / 20)
  assert stats["by_kind"]["complex"]["entropy"] == 0.0


def _is_png(path) -> bool:
  data = path.read_bytes()
  return data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000


def test_plots_write_png_files(params, tmp_path):
  report = mja.map_report(params, CONFIG)
  assert _is_png(mja.plot_type_shares(report, tmp_path / "types.png"))
  chosen = mja.representative_maps(mja.mobius_maps(params, CONFIG))
  assert _is_png(mja.plot_map_images(chosen, tmp_path / "maps.png"))
  ids = np.array([[2, 7, 8, 3]], np.int32)
  weights = [w[0] for w in mja.attention_weights(params, CONFIG, ids)]
  path = mja.plot_attention(weights, ["[CLS]", "a", "b", "[SEP]"], tmp_path / "sub" / "att.png")
  assert _is_png(path)


def test_plot_type_shares_needs_mobius_layers(tmp_path):
  with pytest.raises(ValueError, match="no Möbius layers"):
    mja.plot_type_shares({"layers": []}, tmp_path / "x.png")


def test_parameters_without_an_encoder_are_refused():
  with pytest.raises(ValueError, match="hold no encoder"):
    mja.mobius_maps({"dense": {}}, CONFIG)
