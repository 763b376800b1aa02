"""Evaluation of a trained model on sentence pairs: loss, accuracy, exact match, BLEU, chrF."""

from __future__ import annotations

import math
from collections.abc import Sequence

import sacrebleu

from seq2seq.data import encode_pairs, make_dataset
from seq2seq.training import compile_model
from seq2seq.translator import Translator

BLEU_TOKENIZE = "13a"


def evaluate(
    translator: Translator,
    pairs: Sequence[tuple[str, str]],
    batch_size: int | None = None,
) -> dict:
    """Scores ``translator`` on ``pairs``.

    Loss and token accuracy are teacher-forced, over real target tokens (EOS
    included); exact match, BLEU and chrF compare the translations of the
    translator's decoding strategy (its best hypothesis) with the references (each reference normalised by its tokenizer, e.g. whitespace for
    word level).

    Returns:
        dict with num_examples, strategy, loss, perplexity, token_accuracy,
        teacher_forced_exact_match, exact_match, bleu, chrf, bleu_tokenize,
        num_scored_teacher_forced (pairs within the length limits).
    """
    config = translator.config
    batch_size = batch_size or config.decode.batch_size
    sources = [s for s, _ in pairs]
    references = [translator.normalize_target(t) for _, t in pairs]
    hypotheses = translator.translate(sources, batch_size=batch_size)
    exact = sum(h == r for h, r in zip(hypotheses, references, strict=True))

    result = {"num_examples": len(pairs), "strategy": translator.strategy.name}
    encoded, report = encode_pairs(
        pairs,
        translator.source_vocab,
        translator.target_vocab,
        config.data.max_source_length,
        config.data.max_target_length,
    )
    result["num_scored_teacher_forced"] = report.num_kept
    if len(encoded):
        model = translator.model
        compile_model(model, config)
        metrics = model.evaluate(
            make_dataset(
                encoded,
                batch_size,
                bucket_width=config.data.bucket_width,
                batch_length_limit=config.data.batch_length_limit,
            ),
            verbose=0,
            return_dict=True,
        )
        loss = float(metrics["loss"])
        # JSON has no NaN/Infinity: a non-finite loss is reported as null.
        result["loss"] = loss if math.isfinite(loss) else None
        result["perplexity"] = math.exp(min(loss, 700.0)) if math.isfinite(loss) else None
        result["token_accuracy"] = float(metrics["token_accuracy"])
        result["teacher_forced_exact_match"] = float(metrics["exact_match"])
    result["exact_match"] = exact / len(pairs) if pairs else 0.0
    result["bleu"] = sacrebleu.corpus_bleu(hypotheses, [references], tokenize=BLEU_TOKENIZE).score
    result["chrf"] = sacrebleu.corpus_chrf(hypotheses, [references]).score
    result["bleu_tokenize"] = BLEU_TOKENIZE
    return result
