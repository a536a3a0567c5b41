"""Our models as transformers model folders, and such folders read back.

`save_pretrained(params, config, DIR)` writes what `transformers` loads offline:
  config.json, model.safetensors      the config and the weights (float32, PyTorch names);
  modeling_mobius.py,                 the PyTorch implementation of a model with Möbius layers,
  configuration_mobius.py             for `AutoModel.from_pretrained(DIR, trust_remote_code=True)`;
  tokenizer files                     copied (with a tokenizer_config.json and vocab.txt made
                                      from a BERT tokenizer.json where they are missing);
  README.md                           the model card.
A vanilla BERT or RoFormer is written as transformers' own architecture (`BertModel`,
`RoFormerForMaskedLM`, …), which needs no custom code. The heads in `params` decide the
architectures: a masked-LM head (`AutoModelForMaskedLM`), a classifier
(`AutoModelForSequenceClassification`); `AutoModel` loads the encoder of either.

`load_pretrained(DIR)` reads a folder that either side wrote (ours, or the PyTorch model's
`save_pretrained`) back into our config and parameters. The PyTorch code ships in this package
as plain files (`mobius_jax/models/pytorch/`); nothing here imports torch or transformers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import secrets
import shutil
from collections.abc import Iterable, Iterator, Mapping

import flax.linen as nn
import jax
import numpy as np
from flax import traverse_util

from mobius_jax.models import hf
from mobius_jax.models.config import ModelConfig
from mobius_jax.models.params import count_params

CODE = pathlib.Path(__file__).with_name("pytorch")
CODE_FILES = ("configuration_mobius.py", "modeling_mobius.py")
# Files a tokenizer folder may hold, copied as they are.
TOKENIZER_FILES = (
  "tokenizer.json",
  "vocab.txt",
  "tokenizer_config.json",
  "special_tokens_map.json",
)
# ModelConfig fields written to a Möbius config.json under their own names (besides
# `hf._CONFIG_KEYS`, BERT's); `layout` as one letter per layer, `num_mobius_heads` resolved.
MOBIUS_FIELDS = (
  "family",
  "embedding_size",
  "layout",
  "rotary",
  "rotary_base",
  "num_mobius_heads",
  "mobius_query",
  "mobius_key_value",
  "mobius_score",
  "mobius_eps",
  "mobius_embeddings",
  "mobius_imag_gate",
)
# Fields that do not change a model's outputs (how it is initialised, trained or computed):
# not written. The export computes in float32 whatever `dtype` the model was trained with.
UNEXPORTED_FIELDS = (
  "attention_implementation",
  "dtype",
  "param_dtype",
  "mobius_init",
  "mobius_init_noise",
  "mobius_frozen_maps",
)
ARCHITECTURES = {  # head → (Möbius class, transformers' class suffix)
  None: ("MobiusModel", "Model"),
  "mlm_head": ("MobiusForMaskedLM", "ForMaskedLM"),
  "classifier": ("MobiusForSequenceClassification", "ForSequenceClassification"),
}
AUTO_CLASSES = {
  "AutoModel": "MobiusModel",
  "AutoModelForMaskedLM": "MobiusForMaskedLM",
  "AutoModelForSequenceClassification": "MobiusForSequenceClassification",
}
PAPER = "https://arxiv.org/abs/2409.12175"


# ----------------------------------------------------------------------------- config.json


def config_to_hub(config: ModelConfig) -> dict:
  """The config.json dict of the Möbius PyTorch model (`MobiusConfig`) for `config`.

  Raises:
    ValueError: a field the export does not know has a value other than its default.
  """
  _check_known_fields(config)
  hub = {theirs: getattr(config, ours) for theirs, ours in hf._CONFIG_KEYS.items()}
  hub.update({name: getattr(config, name) for name in MOBIUS_FIELDS})
  hub.update(
    model_type="mobius",
    layout=config.layer_kinds,
    num_mobius_heads=config.mobius_heads,
    embedding_size=config.embedding_width,
  )
  return hub


def config_from_hub(hub: Mapping) -> ModelConfig:
  """A `ModelConfig` from a Möbius config.json dict (`config_to_hub`, or the PyTorch side's)."""
  if hub.get("model_type") != "mobius":
    raise ValueError(
      f"model_type={hub.get('model_type')!r}: a Möbius config.json has model_type 'mobius'; "
      "read BERT and RoFormer folders with `load_pretrained` or `hf.config_from_hf`."
    )
  missing = [k for k in (*hf._CONFIG_KEYS, *MOBIUS_FIELDS) if k not in hub]
  if missing:
    raise ValueError(f"The Möbius config.json lacks {missing}: write it with save_pretrained.")
  fields = {ours: hub[theirs] for theirs, ours in hf._CONFIG_KEYS.items()}
  fields.update({name: hub[name] for name in MOBIUS_FIELDS})
  if hub["family"] == "bert":
    fields["embedding_size"] = None  # BERT's is the hidden size
  return ModelConfig(**fields)


def _check_known_fields(config: ModelConfig) -> None:
  """Refuses a field that is neither written nor known not to change outputs, unless it has
  its default (a field added to ModelConfig after this export was written)."""
  known = {*hf._CONFIG_KEYS.values(), *MOBIUS_FIELDS, *UNEXPORTED_FIELDS}
  for field in dataclasses.fields(config):
    value = getattr(config, field.name)
    if field.name not in known and value != field.default:
      raise ValueError(
        f"{type(config).__name__}.{field.name}={value!r} is not known to the export: the "
        f"PyTorch model would ignore it. Leave it at its default ({field.default!r}) to "
        "export, or teach mobius_jax/models/export.py and pytorch/modeling_mobius.py the option."
      )


def standard_limits(config: ModelConfig) -> list[str]:
  """What keeps `config` from transformers' own BertModel / RoFormerModel (empty: nothing)."""
  limits = []
  if "M" in config.layer_kinds:
    limits.append(f"layout={config.layout!r} has Möbius layers")
  if config.rotary != (config.family == "roformer"):
    limits.append(f"rotary={config.rotary} on family={config.family!r}")
  if config.rotary_base != 10_000.0:
    limits.append(f"rotary_base={config.rotary_base} (transformers' RoFormer has 10000)")
  return limits


# ------------------------------------------------------------------------------ the weights


def _gated_layers(config: ModelConfig) -> list[int]:
  """The Möbius layers that take their imaginary channel from the real side through a gate."""
  kinds = config.layer_kinds
  if not config.mobius_imag_gate:
    return []
  return [i for i, kind in enumerate(kinds) if kind == "M" and (i == 0 or kinds[i - 1] == "V")]


def _name_map(config: ModelConfig, heads: Mapping[str, bool]) -> list:
  """(our path, PyTorch name, transposed) of every parameter of a model with Möbius layers:
  BERT's names for the embeddings, vanilla layers and heads (`hf._name_map`), and the Möbius
  layers' own (`modeling_mobius.MobiusLayer`)."""
  kinds = config.layer_kinds
  vanilla = hf._name_map(dataclasses.replace(config, layout="none"), heads)

  def in_mobius_layer(path):
    return path[1] == "encoder" and kinds[int(path[2].removeprefix("layer_"))] == "M"

  names = [entry for entry in vanilla if not in_mobius_layer(entry[0])]
  for i, kind in enumerate(kinds):
    if kind == "M":
      names += _mobius_layer_names(
        config, ("backbone", "encoder", f"layer_{i}"), f"encoder.layer.{i}"
      )
  for i in _gated_layers(config):
    names.append((("backbone", "encoder", f"imag_gate_{i}"), f"encoder.imag_gate_{i}", False))
  if config.split_embeddings:
    names += _norm(("backbone", "embeddings", "position_norm"), "embeddings.position_norm")
  return names


def _norm(ours: tuple, theirs: str) -> list:
  return [((*ours, "scale"), f"{theirs}.weight", False), ((*ours, "bias"), f"{theirs}.bias", False)]


def _dense(ours: tuple, theirs: str) -> list:
  return [((*ours, "kernel"), f"{theirs}.weight", True), ((*ours, "bias"), f"{theirs}.bias", False)]


def _mobius_layer_names(config: ModelConfig, ours: tuple, theirs: str) -> list:
  """The names of one Möbius layer's parameters (`ComplexEncoderLayer` ↔ `MobiusLayer`)."""

  def complex_dense(name):
    path, prefix = (*ours, "attention", name), f"{theirs}.attention.{name}"
    return [
      entry
      for part in ("real", "imag")
      for entry in (
        ((*path, f"kernel_{part}"), f"{prefix}.weight_{part}", True),
        ((*path, f"bias_{part}"), f"{prefix}.bias_{part}", False),
      )
    ]

  mobius_dims = config.mobius_heads * config.head_dim
  names = []
  if mobius_dims:
    coefficients = (*ours, "attention", "query_mobius", "coefficients")
    names.append((coefficients, f"{theirs}.attention.query_mobius.coefficients", False))
    if config.mobius_query == "linear":
      names += complex_dense("query_linear")
  if mobius_dims < config.hidden_size:
    names += complex_dense("query")
  for name in ("key", "value"):
    if config.mobius_key_value == "dense":
      names += complex_dense(name)
    else:
      names += [
        ((*ours, "attention", name, leaf), f"{theirs}.attention.{name}.{leaf}", False)
        for leaf in ("scale", "bias")
      ]
  names += complex_dense("output")
  for part in ("real", "imag"):
    names += _norm((*ours, f"attention_norm_{part}"), f"{theirs}.attention_norm_{part}")
    for name in ("intermediate", "output"):
      names += _dense((*ours, f"mlp_{part}", name), f"{theirs}.mlp_{part}.{name}")
    names += _norm((*ours, f"mlp_norm_{part}"), f"{theirs}.mlp_norm_{part}")
  return names


def params_to_hub(params: Mapping, config: ModelConfig) -> dict:
  """The Möbius PyTorch model's state dict (numpy, the backbone under `mobius.` where `params`
  has a head) from our parameters `{"backbone": …, "mlm_head"?: …, "classifier"?: …}`."""
  state = hf.write_state(params, config, _name_map)
  has_head = "mlm_head" in params or "classifier" in params
  return hf.with_prefix(state, "mobius") if has_head else state


def params_from_hub(state_dict: Mapping[str, np.ndarray], config: ModelConfig) -> dict:
  """Our parameters from the Möbius PyTorch model's state dict (any of its three classes).

  Raises:
    ValueError: an entry is missing, has another shape or is not used (the message names it).
  """
  return hf.read_state(state_dict, config, _name_map)


def _float32_params(params: Mapping) -> dict:
  """Our parameter tree as float32 numpy arrays (boxed, on devices, or in bfloat16)."""
  return jax.tree.map(lambda x: np.asarray(x, np.float32), jax.device_get(nn.meta.unbox(params)))


def _heads(params: Mapping) -> dict[str, bool]:
  if "backbone" not in params:
    raise ValueError(
      f"params has the keys {sorted(params)}; give the whole model's parameters: "
      '{"backbone": …} with "mlm_head" (MaskedLM) or "classifier" (SequenceClassifier).'
    )
  return {
    "pooler": "pooler" in params["backbone"],
    "mlm_head": "mlm_head" in params,
    "classifier": "classifier" in params,
  }


def _num_labels(params: Mapping) -> int | None:
  classifier = params.get("classifier")
  if classifier is None:
    return None
  kernel = classifier["kernel"] if "kernel" in classifier else classifier["out_proj"]["kernel"]
  return int(np.shape(kernel)[-1])


def _check_params(params: Mapping, config: ModelConfig) -> None:
  """Refuses parameters that are not those of `config`'s model, naming what differs."""
  heads = _heads(params)
  expected = hf._expected_shapes(config, heads, _num_labels(params))
  flat = {k: np.shape(v) for k, v in traverse_util.flatten_dict(dict(params)).items()}
  missing = sorted("/".join(k) for k in set(expected) - set(flat))
  unknown = sorted("/".join(k) for k in set(flat) - set(expected))
  wrong = sorted(
    f"{'/'.join(k)} {flat[k]} ≠ {v}" for k, v in expected.items() if flat.get(k, v) != v
  )
  if missing or unknown or wrong:
    raise ValueError(
      f"params do not fit this config: missing {missing[:4]}, unexpected {unknown[:4]}, shapes "
      f"{wrong[:4]}. Give the config the parameters were trained with."
    )


# ----------------------------------------------------------------------------- the folders


def save_pretrained(
  params: Mapping,
  config: ModelConfig,
  directory: str | os.PathLike,
  *,
  tokenizer: str | os.PathLike | Iterable[str | os.PathLike] | None = None,
  card: str | None = None,
  custom_code: bool | None = None,
) -> pathlib.Path:
  """Writes a transformers model folder of our model (see the module docstring).

  Args:
    params: the model's parameters: `{"backbone": …}` (a `Transformer`'s under "backbone"),
      with "mlm_head" (`MaskedLM`) and / or "classifier" (`SequenceClassifier`).
    config: their `ModelConfig`.
    directory: the folder (created; files already there of the same names are replaced).
    tokenizer: a folder holding tokenizer files (`TOKENIZER_FILES`), or the files themselves.
    card: the model card, README.md's text; default `model_card(config, params)`.
    custom_code: None writes transformers' own BERT / RoFormer where it can represent the model
      (`standard_limits`) and the Möbius code otherwise; True always the Möbius code; False
      transformers' own or a ValueError.

  Returns:
    The folder.

  Raises:
    ValueError: the parameters do not fit the config, or the config cannot be exported as
      asked (the message names the option).
  """
  params = _float32_params(params)
  _check_params(params, config)
  limits = standard_limits(config)
  if custom_code is False and limits:
    raise ValueError(
      f"transformers' own {config.family} cannot represent this model: {'; '.join(limits)}. "
      "Export it with custom_code=None or True (the Möbius PyTorch code)."
    )
  custom = bool(limits) if custom_code is None else custom_code
  hub = config_to_hub(config) if custom else hf.config_to_hf(config)
  if custom:
    state = params_to_hub(params, config)
    hub["auto_map"] = {"AutoConfig": "configuration_mobius.MobiusConfig"}
    hub["auto_map"].update({auto: f"modeling_mobius.{name}" for auto, name in AUTO_CLASSES.items()})
  else:
    state = hf.params_to_hf(params, config, prefix="mlm_head" in params or "classifier" in params)
    for tied in ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias"):
      state.pop(tied, None)  # the word table and the bias, as transformers saves them
  hub.update(_architectures(params, config, custom), pad_token_id=0, torch_dtype="float32")
  directory = pathlib.Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  _write_text(directory / "config.json", json.dumps(hub, indent=2, sort_keys=True) + "\n")
  _write_weights(directory / "model.safetensors", state)
  for name in CODE_FILES if custom else ():
    _write_text(directory / name, (CODE / name).read_text())
  if tokenizer is not None:
    _copy_tokenizer(tokenizer, directory, config)
  _write_text(directory / "README.md", card or model_card(config, params))
  return directory


def _architectures(params: Mapping, config: ModelConfig, custom: bool) -> dict:
  """config.json's `architectures` (one a head in `params`, or the encoder) and labels."""
  heads = [head for head in ("mlm_head", "classifier") if head in params] or [None]
  family = {"bert": "Bert", "roformer": "RoFormer"}[config.family]
  names = [ARCHITECTURES[h][0] if custom else family + ARCHITECTURES[h][1] for h in heads]
  out = {"architectures": names}
  num_labels = _num_labels(params)
  if num_labels is not None:
    out["id2label"] = {str(i): f"LABEL_{i}" for i in range(num_labels)}
    out["label2id"] = {f"LABEL_{i}": i for i in range(num_labels)}
    if num_labels == 1:
      out["problem_type"] = "regression"
  return out


def load_pretrained(directory: str | os.PathLike) -> tuple[ModelConfig, dict]:
  """Our config and parameters from a transformers folder: a Möbius model's (ours, or what
  the PyTorch model's `save_pretrained` wrote) or a BERT / RoFormer checkpoint's.

  Returns:
    (config, params) for `Transformer` (`params["backbone"]`), `MaskedLM` or
    `SequenceClassifier`, as far as the folder has their heads.

  Raises:
    FileNotFoundError, ValueError: as `hf.load_checkpoint` and `hf.params_from_hf`.
  """
  checkpoint = hf.load_checkpoint(directory)
  if checkpoint.config.get("model_type") == "mobius":
    config = config_from_hub(checkpoint.config)
    return config, params_from_hub(checkpoint.state_dict, config)
  config = hf.config_from_hf(checkpoint.config)
  return config, hf.params_from_hf(checkpoint.state_dict, config)


@contextlib.contextmanager
def _atomic_path(path: pathlib.Path) -> Iterator[pathlib.Path]:
  """A temporary path beside `path`, renamed to `path` if the block succeeds: a crash leaves
  the old file or none, never a part of one."""
  temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
  try:
    yield temporary
    os.replace(temporary, path)
  finally:
    if temporary.exists():
      temporary.unlink()


def _write_text(path: pathlib.Path, text: str) -> None:
  with _atomic_path(path) as temporary:
    temporary.write_text(text)


def _write_weights(path: pathlib.Path, state: Mapping[str, np.ndarray]) -> None:
  try:
    from safetensors.numpy import save_file
  except ImportError as error:
    raise ImportError("Writing model.safetensors needs `pip install safetensors`.") from error
  with _atomic_path(path) as temporary:
    # "pt": transformers refuses safetensors files without a format it knows.
    save_file(dict(state), str(temporary), metadata={"format": "pt"})


def _copy_tokenizer(tokenizer, directory: pathlib.Path, config: ModelConfig) -> None:
  """Copies the tokenizer files; from a BERT tokenizer.json alone, also writes the
  tokenizer_config.json (and vocab.txt) that transformers' AutoTokenizer reads."""
  if isinstance(tokenizer, str | os.PathLike) and pathlib.Path(tokenizer).is_dir():
    sources = [pathlib.Path(tokenizer) / n for n in TOKENIZER_FILES]
    sources = [path for path in sources if path.is_file()]
    if not sources:
      raise FileNotFoundError(f"The tokenizer folder {tokenizer} holds none of {TOKENIZER_FILES}.")
  else:
    paths = [tokenizer] if isinstance(tokenizer, str | os.PathLike) else tokenizer
    sources = [pathlib.Path(path) for path in paths]
    absent = [str(path) for path in sources if not path.is_file()]
    if absent:
      raise FileNotFoundError(f"The tokenizer files {absent} do not exist.")
  for source in sources:
    with _atomic_path(directory / source.name) as temporary:
      shutil.copyfile(source, temporary)
  names = {source.name for source in sources}
  if "tokenizer.json" in names and "tokenizer_config.json" not in names:
    saved = hf._read_json(directory / "tokenizer.json")
    settings, vocab = _bert_tokenizer_files(saved, config.max_position_embeddings)
    _write_text(directory / "tokenizer_config.json", json.dumps(settings, indent=2) + "\n")
    if vocab is not None and "vocab.txt" not in names:
      _write_text(directory / "vocab.txt", vocab)


def _bert_tokenizer_files(saved: Mapping, max_length: int) -> tuple[dict, str | None]:
  """(tokenizer_config.json, vocab.txt or None) for a `tokenizers` JSON: BertTokenizerFast for
  a WordPiece model (with its vocab.txt, for the slow tokenizer too), else the generic one."""
  model, normalizer = saved.get("model") or {}, saved.get("normalizer") or {}
  settings = {
    "model_max_length": max_length,
    "clean_up_tokenization_spaces": False,
    **{f"{kind}_token": f"[{kind.upper()}]" for kind in ("unk", "sep", "pad", "cls", "mask")},
  }
  if model.get("type") != "WordPiece":
    return {"tokenizer_class": "PreTrainedTokenizerFast", **settings}, None
  settings.update(
    tokenizer_class="BertTokenizerFast", do_lower_case=normalizer.get("lowercase", True)
  )
  ordered = sorted(model["vocab"].items(), key=lambda item: item[1])
  return settings, "".join(f"{token}\n" for token, _ in ordered)


# ------------------------------------------------------------------------------ model card


def model_card(
  config: ModelConfig,
  params: Mapping,
  *,
  title: str | None = None,
  training: Mapping[str, object] | None = None,
  evaluation: Mapping[str, Mapping[str, float]] | None = None,
) -> str:
  """The README.md of an exported model: what it is, how to load it, how it was trained
  (`training`: item → value), its evaluation (`evaluation`: split → metric → value), the paper
  and the limitations."""
  mobius = "M" in config.layer_kinds
  name = {"bert": "BERT", "roformer": "RoFormer"}[config.family]
  head = "classifier" if "classifier" in params else "mlm_head" if "mlm_head" in params else None
  auto = {"mlm_head": "AutoModelForMaskedLM", "classifier": "AutoModelForSequenceClassification"}
  pipeline = {"mlm_head": "fill-mask", "classifier": "text-classification"}
  tags = ["mobius-jax", "mobius-attention", config.family] + (["custom_code"] if mobius else [])
  front = ["---", "library_name: transformers", f"tags: [{', '.join(tags)}]"]
  front += [f"pipeline_tag: {pipeline[head]}"] if head else []
  lines = [*front, "---", "", f"# {title or ('Möbius' if mobius else '') + name}", ""]
  lines += [_description(config, count_params(params["backbone"])), ""]
  lines += [
    "## Use",
    "",
    "```py",
    "from transformers import AutoTokenizer, " + auto.get(head, "AutoModel"),
  ]
  lines += ["", 'tokenizer = AutoTokenizer.from_pretrained("DIR")']
  remote = ", trust_remote_code=True" if mobius else ""
  lines += [f'model = {auto.get(head, "AutoModel")}.from_pretrained("DIR"{remote})', "```", ""]
  if training:
    lines += ["## Training", "", "| | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in training.items()] + [""]
  if evaluation:
    lines += ["## Evaluation", "", "| split | metric | value |", "|---|---|---:|"]
    lines += [
      f"| {split} | {metric} | {value:.4f} |"
      for split, metrics in evaluation.items()
      for metric, value in metrics.items()
    ] + [""]
  return "\n".join([*lines, *_card_end(mobius)])


def _description(config: ModelConfig, num_params: int) -> str:
  kinds = config.layer_kinds
  name = {"bert": "BERT", "roformer": "RoFormer"}[config.family]
  text = (
    f"A {name} encoder of {config.num_layers} layers (hidden size {config.hidden_size}, "
    f"{config.num_heads} heads, {num_params / 1e6:.1f}M encoder parameters), trained with "
    "mobius-jax (MöbiusAttention in JAX and Flax) and exported to PyTorch."
  )
  if "M" not in kinds:
    return text
  return text + (
    f" Its layers are `{kinds}` (M a Möbius layer, V a vanilla one): a Möbius layer keeps a "
    "real and an imaginary channel, and the query of its first "
    f"{config.mobius_heads} heads is a learned Möbius map f(z) = (az + b)/(cz + d) per "
    f"dimension ({config.mobius_query} query, {config.mobius_key_value} keys and values, "
    f"{config.mobius_score} scores, ε = {config.mobius_eps:g} of the pole-safe map, "
    f"{config.mobius_embeddings} embeddings, rotary positions {'on' if config.rotary else 'off'})."
  )


def _card_end(mobius: bool) -> list[str]:
  lines = [
    "## Paper",
    "",
    "Halacheva, Nayyeri, Staab: *Expanding Expressivity in Transformer Models with "
    f"MöbiusAttention*, arXiv 2409.12175 ({PAPER}).",
    "",
    "## Limitations",
    "",
    "- The weights are float32 and the PyTorch model computes in float32, whatever precision "
    "training used.",
  ]
  if mobius:
    lines += [
      "- MöbiusAttention is a reconstruction: the paper published no code and leaves details "
      "open (how complex scores become real, the heads, the embeddings), so this model follows "
      "mobius-jax's documented choices, not the authors' own.",
      "- The model needs `trust_remote_code=True`: `modeling_mobius.py` in this folder is its "
      "implementation. It returns no attention weights or per-layer hidden states.",
    ]
  return [*lines, ""]
