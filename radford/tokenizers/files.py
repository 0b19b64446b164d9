"""Tokenizers from what is on disk or in a checkpoint: tokenizer.json text, or a file or folder of tokenizer files."""

from __future__ import annotations

import os

import tokenizers
from tokenizers import models

from radford.errors import RadfordError
from radford.hub import local_path
from radford.tokenizers.base import Tokenizer
from radford.tokenizers.bpe import BPE, GPT2BPE, find_files, read_json, read_pair, word_final
from radford.tokenizers.char import Char
from radford.tokenizers.clip import SOT, CLIPTokenizer
from radford.tokenizers.gpt1 import GPT1BPE, is_gpt1


def _wrap(backend: tokenizers.Tokenizer) -> Tokenizer:
    """The radford tokenizer around a loaded backend, chosen by its model.

    A byte-level BPE comes back as a trained ``BPE`` whichever way it was made (GPT-2's included):
    serialized, they differ only in their vocabulary, so nothing in the file tells them apart. CLIP's is told
    apart by its ``<|startoftext|>`` token, GPT-1's by its word-final ``</w>`` without it.
    """
    if is_gpt1(backend):
        return GPT1BPE.from_backend(backend)
    if isinstance(backend.model, models.WordLevel):
        tokenizer: Tokenizer = Char()
    elif isinstance(backend.model, models.BPE) and backend.token_to_id(SOT) is not None:
        tokenizer = CLIPTokenizer()
    elif isinstance(backend.model, models.BPE):
        tokenizer = BPE(vocab_size=backend.get_vocab_size())
    else:
        raise RadfordError(
            f"unsupported tokenizer model {type(backend.model).__name__}; radford reads BPE and WordLevel"
        )
    tokenizer._backend = backend
    return tokenizer


def from_json(text: str) -> Tokenizer:
    """Rebuild a tokenizer from ``to_json()`` output (as a checkpoint stores it)."""
    try:
        backend = tokenizers.Tokenizer.from_str(text)
    except Exception as error:  # tokenizers raises a bare Exception for malformed JSON
        raise RadfordError(f"not a tokenizer.json: {error}") from error
    return _wrap(backend)


def from_files(path: str | os.PathLike) -> Tokenizer:
    """Load a tokenizer from a file or a folder of tokenizer files.

    tokenizer.json rebuilds whatever it holds (as ``from_json``). A vocabulary + merges pair (either file, or their
    folder) is told by its vocabulary, since Hugging Face names every kind's files vocab.json + merges.txt: CLIP's
    has <|startoftext|> (a ``CLIPTokenizer``), GPT-1's ends words with </w> (a ``GPT1BPE``, as does OpenAI's release,
    encoder_bpe_40000.json + vocab_40000.bpe), GPT-2's is byte-level (a ``GPT2BPE``, as are GPT-2's encoder.json +
    vocab.bpe). (The tokenizer of a checkpoint: ``radford.checkpoints.saved_tokenizer``.)
    """
    files = find_files(local_path(path))
    if len(files) == 1:
        return _wrap(read_json(files[0]))
    vocab, _ = read_pair(*files)
    if SOT in vocab:
        return CLIPTokenizer(str(files[0].parent))
    return GPT1BPE(str(files[0])) if word_final(vocab) else GPT2BPE(str(files[0]))
