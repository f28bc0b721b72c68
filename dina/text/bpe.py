"""Text ids: a byte-level BPE for plain text, the release's special tokens by name (report Sec. 2.1;
`longcat-next-release.md` §1 "Vocab", §2).

Plain text goes through a Hugging Face `tokenizers` byte-level BPE, trained on the worlds' text
(`TextTokenizer.train`) or read from any local `tokenizer.json` (`TextTokenizer.load`); its ids
must stay below `VocabConfig.text_vocab_size`. The special tokens (`dina.config.SPECIAL_TOKENS`,
then unnamed reserved ones) are not in the BPE: dina gives special token i the id
text_vocab_size + i, as the release lays out its 53 specials after its 131,072 text ids, so the
layout does not depend on how many merges a small corpus allows. Audio and visual code ids
follow (`VocabConfig.level_offsets`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from dina.config import SPECIAL_TOKENS, VocabConfig
from dina.errors import BadArgument, BadInputFile
from dina.io.atomic import atomic_path

FILE_NAME = "tokenizer.json"


class TextTokenizer:
    """Plain text <-> ids below `text_vocab_size`; special tokens <-> ids right after them."""

    def __init__(self, bpe: Tokenizer, vocab: VocabConfig) -> None:
        if bpe.get_vocab_size(with_added_tokens=True) > vocab.text_vocab_size:
            raise BadInputFile(
                f"the BPE has {bpe.get_vocab_size(with_added_tokens=True)} ids, more than the "
                f"{vocab.text_vocab_size} text ids of the vocabulary"
            )
        self.bpe, self.vocab = bpe, vocab

    @classmethod
    def train(cls, texts: Iterable[str], vocab: VocabConfig) -> TextTokenizer:
        """A byte-level BPE of at most `text_vocab_size` ids learned from `texts`."""
        bpe = Tokenizer(models.BPE())
        bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        bpe.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab.text_vocab_size,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        bpe.train_from_iterator(texts, trainer=trainer)
        return cls(bpe, vocab)

    @classmethod
    def load(cls, directory: str | os.PathLike, vocab: VocabConfig) -> TextTokenizer:
        path = Path(directory) / FILE_NAME
        if not path.is_file():
            raise BadInputFile(f"{path} does not exist")
        try:
            bpe = Tokenizer.from_file(str(path))
        except Exception as e:  # the library raises its own exception types for malformed files
            raise BadInputFile(f"{path} is not a tokenizer.json: {e}") from e
        return cls(bpe, vocab)

    def save(self, directory: str | os.PathLike) -> Path:
        path = Path(directory) / FILE_NAME
        with atomic_path(path) as tmp:
            self.bpe.save(str(tmp))
        return path

    def encode(self, text: str) -> list[int]:
        return list(self.bpe.encode(text).ids)

    def decode(self, ids: Iterable[int]) -> str:
        """Text ids back to the string; special ids are written by name."""
        out, run = [], []
        for i in ids:
            if i < self.vocab.text_vocab_size:
                run.append(i)
                continue
            out.append(self.bpe.decode(run))
            out.append(self.special_name(i))
            run = []
        out.append(self.bpe.decode(run))
        return "".join(out)

    def special_id(self, name: str) -> int:
        if name not in SPECIAL_TOKENS:
            raise BadArgument(f"unknown special token {name!r}")
        return self.vocab.text_vocab_size + SPECIAL_TOKENS.index(name)

    def special_name(self, token_id: int) -> str:
        index = token_id - self.vocab.text_vocab_size
        if not 0 <= index < self.vocab.n_special:
            raise BadArgument(f"id {token_id} is not a special token")
        return SPECIAL_TOKENS[index] if index < len(SPECIAL_TOKENS) else f"<reserved_{index}>"
