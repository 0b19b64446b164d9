"""Tokenizers: GPT-2's byte-level BPE, a byte-level BPE trained on the corpus, GPT-1's BPE, characters, CLIP's BPE,
and the tokenizer a pretrained checkpoint carries (``radford.tokenizers.pretrained``, which reads checkpoints).

One module each; this package names the ones a recipe or a data module uses.
"""

from radford.tokenizers.base import TOKENIZER_JSON, Tokenizer
from radford.tokenizers.bpe import BPE, BPE_PAIRS, EOT, GPT2BPE
from radford.tokenizers.char import Char
from radford.tokenizers.clip import CLIPTokenizer
from radford.tokenizers.files import from_files, from_json
from radford.tokenizers.gpt1 import GPT1BPE

__all__ = [
    "BPE",
    "BPE_PAIRS",
    "EOT",
    "GPT1BPE",
    "GPT2BPE",
    "TOKENIZER_JSON",
    "CLIPTokenizer",
    "Char",
    "Tokenizer",
    "from_files",
    "from_json",
]
