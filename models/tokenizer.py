"""A tokenizer trained in-process for the tiny model: every digit and symbol is its own token.

Words of letters are whole tokens, whitespace characters are single tokens, and decoding concatenates
tokens exactly (`decode(encode(s)) == s`), so step boundaries ("\\n") are never merged away.
"""

from __future__ import annotations

from collections.abc import Iterable

SPECIAL_TOKENS = {"pad": "<pad>", "unk": "<unk>", "bos": "<s>", "eos": "</s>"}
_SPLIT_PATTERN = r"[A-Za-z]+|\d|\s|[^\sA-Za-z\d]"


def train_tokenizer(texts: Iterable[str]):
    """A `PreTrainedTokenizerFast` whose vocabulary is every piece seen in `texts`, plus all digits."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token=SPECIAL_TOKENS["unk"]))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(_SPLIT_PATTERN), behavior="isolated")
    tok.decoder = decoders.Fuse()
    trainer = trainers.WordLevelTrainer(special_tokens=list(SPECIAL_TOKENS.values()), min_frequency=1)
    base = [str(d) for d in range(10)] + list("+-*/=().,:$% \n")
    tok.train_from_iterator([*base, *texts], trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=SPECIAL_TOKENS["pad"], unk_token=SPECIAL_TOKENS["unk"],
        bos_token=SPECIAL_TOKENS["bos"], eos_token=SPECIAL_TOKENS["eos"],
        clean_up_tokenization_spaces=False,
    )
