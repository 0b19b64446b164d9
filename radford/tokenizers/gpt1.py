"""GPT-1's BPE (Radford et al. 2018, "Improving Language Understanding by Generative Pre-Training", section 4.1:
40,000 merges, 40,478 tokens), read from OpenAI's release (``encoder_bpe_40000.json`` + ``vocab_40000.bpe``) or a
Hugging Face ``openai-gpt`` folder (the same two files as ``vocab.json`` + ``merges.txt``).

The pipeline is transformers' ``OpenAIGPTTokenizer``'s, so that a pretrained GPT-1 sees the ids it does: text
lower-cased with accents stripped, split at whitespace and punctuation (BERT's pre-tokenisation, which stands in for
the original's ftfy and spaCy), each word's last token marked with ``</w>``; a character outside the vocabulary is
``<unk>``. There is no end-of-text token: fine-tuning's three special tokens come after the 40,478.
"""

from __future__ import annotations

import tokenizers
from tokenizers import decoders, models, normalizers, pre_tokenizers

from radford.errors import RadfordError
from radford.hub import local_path
from radford.tokenizers.base import Tokenizer
from radford.tokenizers.bpe import END_OF_WORD, find_files, read_json, read_pair, word_final
from radford.tokenizers.clip import SOT

UNK = "<unk>"


def gpt1_backend(vocab: dict[str, int], merges: list[tuple[str, str]]) -> tokenizers.Tokenizer:
    """GPT-1's pipeline around its vocabulary and merges, as transformers builds it."""
    backend = tokenizers.Tokenizer(models.BPE(vocab, merges, unk_token=UNK, end_of_word_suffix=END_OF_WORD))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)  # also strips accents and control characters
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.BPEDecoder(suffix=END_OF_WORD)
    # Special, as in transformers: "<unk>" in the text is its id (0 in OpenAI's vocabulary; appended if absent).
    backend.add_special_tokens([UNK])
    return backend


def is_gpt1(backend: tokenizers.Tokenizer) -> bool:
    """Whether a loaded tokenizer is GPT-1's kind: a word-final BPE without CLIP's <|startoftext|>."""
    model = backend.model
    ends_words = isinstance(model, models.BPE) and model.end_of_word_suffix == END_OF_WORD
    return ends_words and backend.token_to_id(SOT) is None


class GPT1BPE(Tokenizer):
    """GPT-1's BPE with its fixed vocabulary of 40,478 tokens. ``path``: a folder or file of OpenAI's release
    (encoder_bpe_40000.json + vocab_40000.bpe), of a Hugging Face openai-gpt folder (vocab.json + merges.txt), or a
    tokenizer.json that this tokenizer wrote."""

    hf_class = "OpenAIGPTTokenizer"

    def __init__(self, path: str) -> None:
        super().__init__()
        files = find_files(local_path(path))
        if len(files) == 1:
            backend = read_json(files[0])
            if not is_gpt1(backend):
                raise RadfordError(
                    f"{files[0]} is not GPT-1's tokenizer (a BPE whose tokens end words with "
                    f"{END_OF_WORD}); radford.tokenizers.from_files reads any kind"
                )
        else:
            vocab, merges = read_pair(*files)
            if not word_final(vocab) or SOT in vocab:
                kind = "CLIP's" if SOT in vocab else "a byte-level BPE (GPT-2's kind)"
                raise RadfordError(
                    f"{files[0]} holds {kind}, not GPT-1's BPE (tokens ending words with "
                    f"{END_OF_WORD}); radford.tokenizers.from_files reads any kind"
                )
            backend = gpt1_backend(vocab, merges)
        self._backend = backend

    @classmethod
    def from_backend(cls, backend: tokenizers.Tokenizer) -> GPT1BPE:
        """The tokenizer around GPT-1's pipeline as ``to_json`` wrote it (a checkpoint keeps it so)."""
        tokenizer = cls.__new__(cls)
        Tokenizer.__init__(tokenizer)
        tokenizer._backend = backend
        return tokenizer
