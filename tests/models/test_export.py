"""Export to transformers folders and back: the PyTorch Möbius model against ours (every
layout kind, score rule, embedding reading, query and key form), folders the PyTorch side
saved read back, transformers' own BERT and RoFormer for vanilla models, and the refusals.

Models are small and random (every float parameter random, LayerNorms too), on padded
two-segment batches as in test_hf.py; outputs must agree to 1e-5 in float32. Trained runs'
exports loaded by the auto classes in a process without JAX: tests/e2e/test_export.py.
"""

import dataclasses
import json

import flax.linen as nn
import jax
import numpy as np
import pytest

from mobius_jax.models import MaskedLM, ModelConfig, SequenceClassifier, Transformer, export, hf

safetensors = pytest.importorskip("safetensors.numpy")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
modeling = pytest.importorskip("mobius_jax.models.pytorch.modeling_mobius")

TOL = 1e-5
IDS = np.array([[2, 5, 9, 11, 7, 0, 0, 0], [3, 8, 1, 4, 6, 12, 10, 13]])
MASK = (IDS > 0).astype(np.int64)
TYPES = np.array([[0, 0, 1, 1, 1, 0, 0, 0], [0, 0, 0, 0, 1, 1, 1, 1]])
INPUTS = {"input_ids": IDS, "attention_mask": MASK, "token_type_ids": TYPES}
NUM_LABELS = 3
SIZES = dict(
  vocab_size=99, hidden_size=32, num_heads=4, intermediate_size=37, max_position_embeddings=64
)
# Together: every layer kind and transition (M→M, M→V, V→M), each score rule, both
# embedding readings, both query and key-value forms, gates, 0 / some / all Möbius heads,
# rotary BERT, RoFormer with a projected embedding, the exact map (ε = 0), both GELUs. (The
# end-to-end test, tests/train/test_export.py, adds MöbiusRoFormer's "stream" sinusoids.)
CASES = {
  "bert_framed": dict(family="bert", num_layers=3, layout="framed"),
  "bert_split": dict(
    family="bert",
    num_layers=3,
    layout="MMV",
    mobius_embeddings="split",
    mobius_query="linear",
    mobius_score="bilinear",
    num_mobius_heads=1,
  ),
  "bert_rotary_gated": dict(
    family="bert",
    num_layers=3,
    layout="VMM",
    rotary=True,
    mobius_imag_gate=True,
    mobius_score="magnitude",
    mobius_key_value="elementwise",
    num_mobius_heads=4,
  ),
  "roformer_split": dict(
    family="roformer",
    num_layers=3,
    layout="alternating",
    mobius_embeddings="split",
    mobius_imag_gate=True,
    num_mobius_heads=0,
    mobius_eps=0.0,
    hidden_act="gelu_new",
    embedding_size=24,
  ),
  "bert_vanilla_rotary": dict(family="bert", num_layers=2, rotary=True, rotary_base=100.0),
}


def random_params(config: ModelConfig, seed: int = 0) -> dict:
  """Parameters with every head (pooler, classifier, masked LM), every float random: 0.3 ×
  normal, and Möbius maps near the identity (a, d ≈ 1) so that no input is near a pole."""
  model = SequenceClassifier(config, NUM_LABELS)
  params = nn.meta.unbox(jax.eval_shape(model.init, jax.random.key(0), IDS))["params"]
  width, vocab = config.embedding_width, config.vocab_size
  mlm_head = {  # MaskedLM's head, without tracing another model
    "transform": {"kernel": np.empty((config.hidden_size, width)), "bias": np.empty(width)},
    "transform_norm": {"scale": np.empty(width), "bias": np.empty(width)},
    "bias": np.empty(vocab),
  }
  rng = np.random.default_rng(seed)

  def leaf(path, value):
    out = 0.3 * rng.standard_normal(value.shape).astype(np.float32)
    if path[-1].key == "coefficients":
      out[[0, 3], 0] += 1.0
    return out

  return jax.tree_util.tree_map_with_path(leaf, {**params, "mlm_head": mlm_head})


def our_outputs(params: dict, config: ModelConfig) -> dict:
  """The encoder's outputs, and those of the heads that `params` has."""
  inputs = {"attention_mask": MASK, "token_type_ids": TYPES}
  encoder = Transformer(config).apply({"params": params["backbone"]}, IDS, **inputs)
  out = {"sequence": encoder.sequence}
  if encoder.pooled is not None:
    out["pooled"] = encoder.pooled
  if "mlm_head" in params:
    out["mlm"] = MaskedLM(config).apply({"params": params}, IDS, **inputs)
  if "classifier" in params:
    classifier = SequenceClassifier(config, NUM_LABELS)
    out["classifier"] = classifier.apply({"params": params}, IDS, **inputs)
  return {k: np.asarray(v) for k, v in out.items()}


def torch_outputs(folder, classes=None) -> dict:
  """Outputs of the folder's model, loaded as the PyTorch classes (`modeling_mobius`'s, or
  transformers' own for a vanilla export); the encoder's are the classifier's backbone's."""
  classes = classes or {
    "mlm": modeling.MobiusForMaskedLM,
    "classifier": modeling.MobiusForSequenceClassification,
  }
  inputs = {k: torch.from_numpy(v) for k, v in INPUTS.items()}
  out = {}
  with torch.no_grad():
    for head, cls in classes.items():
      model = cls.from_pretrained(folder).eval()
      out[head] = model(**inputs).logits.numpy()
    encoder = model.base_model(**inputs)
    out["sequence"] = encoder.last_hidden_state.numpy()
    if getattr(encoder, "pooler_output", None) is not None:
      out["pooled"] = encoder.pooler_output.numpy()
  return out


def assert_same(expected: dict, actual: dict) -> None:
  assert set(expected) == set(actual)
  for key in expected:
    np.testing.assert_allclose(actual[key], expected[key], atol=TOL, rtol=0, err_msg=key)


def normalised(config: ModelConfig) -> ModelConfig:
  """`config` as a Möbius config.json spells it: the layout by letters, the heads counted."""
  return dataclasses.replace(
    config,
    layout=config.layer_kinds,
    num_mobius_heads=config.mobius_heads,
    embedding_size=config.embedding_width if config.family == "roformer" else None,
  )


@pytest.mark.parametrize("case", list(CASES))
def test_pytorch_model_computes_our_outputs(case, tmp_path):
  config = ModelConfig(**SIZES, **CASES[case])
  params = random_params(config)
  folder = export.save_pretrained(params, config, tmp_path / "export")
  hub = json.loads((folder / "config.json").read_text())
  assert hub["model_type"] == "mobius" and hub["layout"] == config.layer_kinds
  assert hub["architectures"] == ["MobiusForMaskedLM", "MobiusForSequenceClassification"]
  assert set(hub["auto_map"]) >= {"AutoConfig", "AutoModel", "AutoModelForMaskedLM"}
  assert (folder / "modeling_mobius.py").is_file() and (folder / "README.md").is_file()
  ours = our_outputs(params, config)
  assert_same(ours, torch_outputs(folder))
  assert export.config_from_hub(hub) == normalised(config)
  # As written, the folder reads back (`params_from_hub`; a changed folder: the next tests).
  state = safetensors.load_file(str(folder / "model.safetensors"))
  back = export.params_from_hub(state, export.config_from_hub(hub))
  jax.tree.map(np.testing.assert_array_equal, back, params)


def test_a_changed_mobius_coefficient_or_eps_breaks_parity(tmp_path):
  config = ModelConfig(**SIZES, **CASES["bert_framed"])
  params = random_params(config)
  folder = export.save_pretrained(params, config, tmp_path / "export")
  ours = our_outputs(params, config)["sequence"]
  inputs = {k: torch.from_numpy(v) for k, v in INPUTS.items()}

  def sequence(model):
    with torch.no_grad():
      return model.eval()(**inputs).last_hidden_state.numpy()

  model = modeling.MobiusModel.from_pretrained(folder)
  np.testing.assert_allclose(sequence(model), ours, atol=TOL)
  with torch.no_grad():
    model.encoder.layer[2].attention.query_mobius.coefficients[2, 0] += 0.3  # Re c, last layer
  assert np.abs(sequence(model) - ours).max() > 1e-3
  # ε of the pole-safe map is read from config.json.
  changed = modeling.MobiusModel.from_pretrained(folder, mobius_eps=0.5)
  assert np.abs(sequence(changed) - ours).max() > 1e-3


def test_a_folder_saved_by_pytorch_reads_back(tmp_path):
  config = ModelConfig(**SIZES, **CASES["roformer_split"])
  folder = export.save_pretrained(random_params(config), config, tmp_path / "export")
  inputs = {k: torch.from_numpy(v) for k, v in INPUTS.items()}
  generator = torch.Generator().manual_seed(1)
  for cls in (modeling.MobiusForMaskedLM, modeling.MobiusForSequenceClassification):
    model = cls.from_pretrained(folder).eval()
    with torch.no_grad():
      for parameter in model.parameters():  # weights of the PyTorch side's own
        parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
      expected = model(**inputs).logits.numpy()
    model.save_pretrained(tmp_path / cls.__name__)
    back_config, params = export.load_pretrained(tmp_path / cls.__name__)
    assert back_config == normalised(config)
    ours = our_outputs(params, back_config)
    np.testing.assert_allclose(
      ours["mlm" if "mlm_head" in params else "classifier"], expected, atol=TOL
    )


@pytest.mark.parametrize("family", ["bert", "roformer"])
def test_vanilla_models_export_to_transformers_own_classes(family, tmp_path):
  config = ModelConfig(**SIZES, family=family, num_layers=2)
  params = random_params(config)
  folder = export.save_pretrained(params, config, tmp_path / "export", card="A card.\n")
  hub = json.loads((folder / "config.json").read_text())
  assert hub["model_type"] == family and "auto_map" not in hub
  assert not (folder / "modeling_mobius.py").exists()
  assert (folder / "README.md").read_text() == "A card.\n"
  name = {"bert": "Bert", "roformer": "RoFormer"}[family]
  classes = {
    "mlm": getattr(transformers, f"{name}ForMaskedLM"),
    "classifier": getattr(transformers, f"{name}ForSequenceClassification"),
  }
  assert_same(our_outputs(params, config), torch_outputs(folder, classes))
  back_config, back = export.load_pretrained(folder)
  assert dataclasses.replace(back_config, embedding_size=None) == config
  jax.tree.map(np.testing.assert_array_equal, back, params)


def test_what_cannot_be_exported_is_refused_by_name(tmp_path):
  framed = ModelConfig(**SIZES, num_layers=2, layout="framed")
  params = random_params(framed)
  with pytest.raises(ValueError, match=r"layout='framed' has Möbius layers.*custom_code=None"):
    export.save_pretrained(params, framed, tmp_path, custom_code=False)
  rotary = ModelConfig(**SIZES, num_layers=2, rotary=True)
  with pytest.raises(ValueError, match=r"rotary=True on family='bert'"):
    export.save_pretrained(random_params(rotary), rotary, tmp_path, custom_code=False)
  other = dataclasses.replace(framed, hidden_size=16, num_heads=2)
  with pytest.raises(ValueError, match=r"params do not fit this config: .*shapes \['backbone"):
    export.save_pretrained(params, other, tmp_path)
  with pytest.raises(ValueError, match="give the whole model's parameters"):
    export.save_pretrained(params["backbone"], framed, tmp_path)
  with pytest.raises(FileNotFoundError, match="tokenizer files"):
    export.save_pretrained(params, framed, tmp_path, tokenizer=[tmp_path / "tokenizer.json"])

  @dataclasses.dataclass(frozen=True, kw_only=True)
  class Extended(ModelConfig):
    mobius_twist: float = 0.0  # an option the export does not know

  with pytest.raises(ValueError, match=r"Extended.mobius_twist=0.5 is not known to the export"):
    export.config_to_hub(Extended(**SIZES, num_layers=2, layout="framed", mobius_twist=0.5))
  assert export.config_to_hub(Extended(**SIZES, num_layers=2))["layout"] == "VV"
  hub = export.config_to_hub(framed)
  with pytest.raises(ValueError, match=r"lacks \['mobius_score'\]"):
    export.config_from_hub({k: v for k, v in hub.items() if k != "mobius_score"})
  with pytest.raises(ValueError, match=r"export\.load_pretrained"):
    hf.config_from_hf(hub)


def test_the_pytorch_config_refuses_wrong_values_by_name():
  configuration = pytest.importorskip("mobius_jax.models.pytorch.configuration_mobius")
  assert configuration.MobiusConfig(num_hidden_layers=3).layout == "MVM"
  with pytest.raises(ValueError, match=r"layout='MXM' must have one letter"):
    configuration.MobiusConfig(num_hidden_layers=3, layout="MXM")
  with pytest.raises(ValueError, match=r"mobius_score='real' is not one of"):
    configuration.MobiusConfig(mobius_score="real")
  with pytest.raises(ValueError, match=r"num_mobius_heads=13 must lie in \[0, "):
    configuration.MobiusConfig(num_mobius_heads=13)
