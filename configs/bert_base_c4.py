"""BERT-base pretrained on C4 with MosaicBERT's recipe for it, which the paper used.

Every value is MosaicBERT's (github.com/mosaicml/examples), from the yaml of the architecture
we build, Hugging Face's BERT: `examples/bert/yamls/main/hf-bert-base-uncased.yaml` (read at
commit 0175185; the same recipe as `yamls/main/mosaic-bert-base-uncased.yaml` but for masking),
and `main.py` (`DecoupledAdamW` over all parameters, clipping only if a `gradient_clipping`
algorithm is listed: none is). The paper's 110M-parameter BERT is this architecture (ours:
109.5M); MosaicBERT's own (ALiBi, gated feed-forward) has 137M, and its yaml masks 30 %.

Needs TFDS `c4/en` prepared as array_record (`tfds build c4/en --file_format=array_record`)
and bert-base-uncased's vocab.txt (the yaml's `tokenizer_name: bert-base-uncased`):

  python -m train.main --config configs/bert_base_c4.py --workdir /mnt/runs/bert-base \
    --config.tokenizer.vocab_file=/path/to/bert-base-uncased/vocab.txt
"""

from ml_collections import config_dict

from configs import default


def get_config():
  config = default.get_config()
  config.model = "bert-base"
  config.model_overrides.attention_dropout = 0.0  # `attention_probs_dropout_prob: 0.0`
  config.corpus = "c4"
  # Required: bert-base-uncased's vocab.txt ("" would train a new WordPiece on C4 instead).
  config.tokenizer.vocab_file = config_dict.placeholder(str)
  config.tokenizer.vocab_size = 30_522  # only used if vocab_file is ""
  config.tokenizer.train_examples = 1_000_000  # C4 documents to train that vocabulary on
  config.vocab_multiple = 64  # 30,522 → 30,528, as MosaicBERT's padding to a multiple of 8
  config.max_len = 128  # `max_seq_len: 128`
  config.packing = False  # each C4 document truncated to 128 tokens, as MosaicBERT's loader
  config.mask_rate = 0.15  # `mlm_probability: 0.15` (evaluation also at 15 %)
  config.batch_size = 4096  # `global_train_batch_size: 4096`
  config.eval_batch_size = 1024
  config.eval_examples = 65_536
  config.num_train_steps = 70_000  # `max_duration: 286720000sp` ÷ 4096
  config.optimizer.learning_rate = 5e-4  # `lr: 5.0e-4`
  config.optimizer.warmup_ratio = 0.06  # `t_warmup: 0.06dur`
  config.optimizer.schedule = "linear"  # `linear_decay_with_warmup`
  config.optimizer.final_rate = 0.02  # `alpha_f: 0.02`
  config.optimizer.b1, config.optimizer.b2 = 0.9, 0.98  # `betas: [0.9, 0.98]`
  config.optimizer.eps = 1e-6  # `eps: 1.0e-06`
  config.optimizer.weight_decay = 1e-5  # `weight_decay: 1.0e-5`, composer's decoupled form:
  config.optimizer.weight_decay_scaling = "schedule"
  config.optimizer.no_decay = ("coefficients",)  # all decayed but the Möbius maps (ours)
  config.optimizer.grad_clip = 0.0  # no `gradient_clipping` algorithm
  config.dtype = "bfloat16"  # `precision: bf16`
  config.seed = 17  # `seed: 17`
  config.log_every_steps = 100
  config.checkpoint_every_steps = 3500
  config.keep_checkpoints = 3
  return config
