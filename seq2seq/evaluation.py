"""Evaluation: BLEU, chrF and exact match of translations, and a model's scores on sentence pairs.

`score_translations` is the one place where translations are compared with
references (sacrebleu for BLEU and chrF); `evaluate` translates pairs with a
model and adds its teacher-forced loss and accuracy, and `score_files` scores
a file of translations (e.g. written by `seq2seq-translate`) without a model.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import sacrebleu

from seq2seq.readers import DataError, read_tsv

if TYPE_CHECKING:
    from seq2seq.translator import Translator

BLEU_TOKENIZE = "13a"
# Every tokenizer of sacrebleu's BLEU ("ja-mecab", "ko-mecab" and the
# SentencePiece ones need extra packages or a download).
BLEU_TOKENIZERS = tuple(sacrebleu.BLEU.TOKENIZERS)
# exp(loss) overflows a float above this loss.
_MAX_EXP_ARGUMENT = 700.0
_UTF8_BOM = "\ufeff"


def check_bleu_tokenize(bleu_tokenize: str) -> str:
    """Returns `bleu_tokenize` if it names a sacrebleu tokenizer.

    Raises:
        ValueError: Naming the flag and listing the choices, if it does not.
    """
    if bleu_tokenize not in BLEU_TOKENIZERS:
        raise ValueError(
            "Expected `bleu_tokenize` (--bleu_tokenize) to be one of "
            f"{', '.join(map(repr, BLEU_TOKENIZERS))}. Received: bleu_tokenize={bleu_tokenize!r}"
        )
    return bleu_tokenize


def score_translations(
    hypotheses: Sequence[str],
    references: Sequence[str],
    *,
    bleu_tokenize: str = BLEU_TOKENIZE,
    lowercase: bool = False,
) -> dict:
    """Scores translations against one reference each.

    Args:
        hypotheses: The translations, one string per sentence.
        references: The reference translations, aligned with `hypotheses`.
        bleu_tokenize: The sacrebleu tokenizer of BLEU, one of
            `BLEU_TOKENIZERS` ("13a" is sacrebleu's default, "intl" splits
            punctuation of every script, "char" scores characters, "none"
            takes the text as already tokenized).
        lowercase: Compare case-insensitively (BLEU, chrF and exact match).

    Returns:
        dict with num_examples, exact_match (share of hypotheses equal to
        their reference), bleu and chrf (corpus scores, 0-100),
        bleu_tokenize, lowercase, and bleu_signature and chrf_signature (the
        sacrebleu signatures, which say how the scores were computed).

    Raises:
        ValueError: If the lists are empty or differ in length, or
            `bleu_tokenize` is unknown or unavailable.
    """
    check_bleu_tokenize(bleu_tokenize)
    if len(hypotheses) != len(references):
        raise ValueError(
            "Expected as many references as hypotheses. Received: "
            f"{len(hypotheses)} hypotheses, {len(references)} references"
        )
    if not hypotheses:
        raise ValueError("Expected at least one hypothesis to score. Received: none")
    try:
        # "none" says the text is tokenised already: no "forgot to detokenize" warning.
        bleu = sacrebleu.BLEU(
            tokenize=bleu_tokenize, lowercase=lowercase, force=bleu_tokenize == "none"
        )
    except (ImportError, RuntimeError, OSError) as error:
        # ja-mecab / ko-mecab need extra packages; the SentencePiece ones download a model.
        raise ValueError(
            f"sacrebleu's {bleu_tokenize!r} tokenizer (--bleu_tokenize) is not available "
            f"here: {str(error).strip()}"
        ) from None
    chrf = sacrebleu.CHRF(lowercase=lowercase)
    hypotheses, references = list(hypotheses), list(references)
    bleu_score = bleu.corpus_score(hypotheses, [references]).score
    chrf_score = chrf.corpus_score(hypotheses, [references]).score
    if lowercase:
        exact = sum(h.lower() == r.lower() for h, r in zip(hypotheses, references, strict=True))
    else:
        exact = sum(h == r for h, r in zip(hypotheses, references, strict=True))
    return {
        "num_examples": len(hypotheses),
        "exact_match": exact / len(hypotheses),
        "bleu": bleu_score,
        "chrf": chrf_score,
        "bleu_tokenize": bleu_tokenize,
        "lowercase": lowercase,
        "bleu_signature": bleu.get_signature().format(),
        "chrf_signature": chrf.get_signature().format(),
    }


def read_sentences(path: str | os.PathLike[str]) -> list[str]:
    """Reads a file of sentences, one per line (UTF-8; a byte order mark is allowed).

    Only "\\n" (or "\\r\\n") ends a line, as `seq2seq-translate` writes
    them; whitespace around each sentence is removed.

    Raises:
        FileNotFoundError: If `path` does not exist.
        DataError: If a line is not valid UTF-8 ("path:line: ...").
    """
    path = os.fspath(path)
    with open(path, "rb") as file:
        data = file.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise DataError("not valid UTF-8", path=path, line=line) from None
    text = text.removeprefix(_UTF8_BOM)
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.strip() for line in lines]


def score_files(
    hypotheses_path: str | os.PathLike[str],
    references_path: str | os.PathLike[str] | None = None,
    *,
    test_file: str | os.PathLike[str] | None = None,
    on_bad_line: str = "error",
    bleu_tokenize: str = BLEU_TOKENIZE,
    lowercase: bool = False,
) -> dict:
    """Scores a file of translations against references, without a model.

    The references are the lines of `references_path`, or the targets (second
    column) of the TSV `test_file`; give exactly one. Line i of the
    hypotheses translates line i of `references_path`. With `test_file`, the
    hypotheses have either one line per line of the TSV file (as
    `cut -f1 test.tsv | seq2seq-translate` writes them; the lines of blank
    or skipped bad TSV lines are left out) or one line per pair read.

    Args:
        hypotheses_path: The translations, one per line.
        references_path: The references, one per line.
        test_file: A TSV file of (source, target) pairs.
        on_bad_line: "error" or "skip" malformed lines of `test_file`.
        bleu_tokenize: The sacrebleu tokenizer of BLEU (see `score_translations`).
        lowercase: Compare case-insensitively.

    Returns:
        The dict of `score_translations`.

    Raises:
        FileNotFoundError: If a file does not exist.
        DataError: If the line counts do not match (naming both files and
            counts), a line is not valid UTF-8, a TSV line is bad, or there is
            nothing to score.
        ValueError: If not exactly one of `references_path` and `test_file`
            is given, or `bleu_tokenize` is unknown.
    """
    check_bleu_tokenize(bleu_tokenize)
    if (references_path is None) == (test_file is None):
        raise ValueError(
            "Give exactly one of references_path (--references) and test_file (--test_file)."
        )
    hypotheses_path = os.fspath(hypotheses_path)
    hypotheses = read_sentences(hypotheses_path)
    if references_path is not None:
        references_path = os.fspath(references_path)
        references = read_sentences(references_path)
        if len(hypotheses) != len(references):
            raise DataError(
                f"hypotheses and references have different line counts: {hypotheses_path} "
                f"has {len(hypotheses)}, {references_path} has {len(references)}."
            )
    else:
        test_file = os.fspath(test_file)
        pairs, report = read_tsv(test_file, on_bad_line=on_bad_line)
        references = [target for _, target in pairs]
        if len(hypotheses) == report.num_lines:
            hypotheses = [hypotheses[line - 1] for line in report.pair_lines]
        elif len(hypotheses) != len(pairs):
            raise DataError(
                f"hypotheses and test file do not line up: {hypotheses_path} has "
                f"{len(hypotheses)} lines, {test_file} has {report.num_lines} lines "
                f"({len(pairs)} pairs); expected one hypothesis per line or per pair."
            )
    if not hypotheses:
        raise DataError("contains no sentences to score.", path=hypotheses_path)
    return score_translations(
        hypotheses, references, bleu_tokenize=bleu_tokenize, lowercase=lowercase
    )


def evaluate(
    translator: Translator,
    pairs: Sequence[tuple[str, str]],
    batch_size: int | None = None,
    *,
    bleu_tokenize: str = BLEU_TOKENIZE,
    lowercase: bool = False,
) -> dict:
    """Scores ``translator`` on ``pairs``.

    Loss and token accuracy are teacher-forced, over real target tokens (EOS
    included); exact match, BLEU and chrF (`score_translations`) compare the
    translations of the translator's decoding strategy (its best hypothesis)
    with the references (each reference normalised by its tokenizer, e.g.
    whitespace for word level).

    Args:
        translator: The model to score.
        pairs: The (source, reference) pairs.
        batch_size: Sentences per batch; None for the config's
            `decode.batch_size`.
        bleu_tokenize: The sacrebleu tokenizer of BLEU (see `score_translations`).
        lowercase: Compare case-insensitively (BLEU, chrF and exact match).

    Returns:
        dict with num_examples, strategy, num_scored_teacher_forced (pairs
        within the length limits), loss (the mean cross-entropy per real
        target token, without label smoothing), perplexity, token_accuracy,
        teacher_forced_exact_match (these four when a pair is within the
        limits), and the keys of `score_translations`.

    Raises:
        ValueError: If `pairs` is empty or `bleu_tokenize` is unknown.
    """
    # The model code is imported here, so that scoring files needs no TensorFlow.
    from seq2seq.data import encode_pairs, make_dataset
    from seq2seq.training import compile_model

    check_bleu_tokenize(bleu_tokenize)
    if not pairs:
        raise ValueError("Expected at least one sentence pair to evaluate. Received: none")
    config = translator.config
    batch_size = batch_size or config.decode.batch_size
    sources = [s for s, _ in pairs]
    references = [translator.normalize_target(t) for _, t in pairs]
    hypotheses = translator.translate(sources, batch_size=batch_size)

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
        # Plain cross-entropy, whatever label smoothing training used: the
        # loss and the perplexity are those of the model's distribution.
        plain = dataclasses.replace(config.train, label_smoothing=0.0)
        compile_model(model, dataclasses.replace(config, train=plain))
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
        result["perplexity"] = (
            math.exp(min(loss, _MAX_EXP_ARGUMENT)) if math.isfinite(loss) else None
        )
        result["token_accuracy"] = float(metrics["token_accuracy"])
        result["teacher_forced_exact_match"] = float(metrics["exact_match"])
    result.update(
        score_translations(hypotheses, references, bleu_tokenize=bleu_tokenize, lowercase=lowercase)
    )
    return result
