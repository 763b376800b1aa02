#!/usr/bin/env bash
# Multi30k de->en recipe (docs/multi30k.md): train, then score greedy translations
# of test2016 with sacrebleu on the tokenised, lowercased text.
#
# usage: scripts/multi30k.sh DATA_DIR [MODEL_DIR]
#   DATA_DIR holds train.tok.de-en.tsv, val.tok.de-en.tsv, test_2016_flickr.tok.de-en.tsv
set -euo pipefail
data=${1:?usage: scripts/multi30k.sh DATA_DIR [MODEL_DIR]}
model_dir=${2:-runs/multi30k}
test_file="$data/test_2016_flickr.tok.de-en.tsv"

start=$(date +%s)
seq2seq-train \
  --train_file "$data/train.tok.de-en.tsv" \
  --valid_file "$data/val.tok.de-en.tsv" \
  --model_dir "$model_dir" \
  --tokenizer word --min_count 2 \
  --cell gru --units 256 --bidirectional \
  --source_input embedding --target_input embedding --embedding_dim 256 \
  --attention multiplicative --dropout 0.5 --label_smoothing 0.1 \
  --lr_schedule cosine --learning_rate 0.003 --batch_size 128 --epochs 18 --patience 0 \
  --num_samples 3
echo "training took $(( $(date +%s) - start )) s"

# Greedy translations of the test sources, then BLEU on the tokenised text.
cut -f1 "$test_file" | seq2seq-translate --model_dir "$model_dir" > "$model_dir/test_2016_flickr.en"
seq2seq-evaluate --hypotheses "$model_dir/test_2016_flickr.en" --test_file "$test_file" \
  --bleu_tokenize none
# The same with the model: adds loss, perplexity and token accuracy.
seq2seq-evaluate --model_dir "$model_dir" --test_file "$test_file" --bleu_tokenize none
