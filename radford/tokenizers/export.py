"""A tokenizer as the tokenizer files of a Hugging Face model folder, which transformers' ``AutoTokenizer`` (and so
``pipeline``) reads back to the ids and text radford's tokenizer gives.

Each tokenizer names the transformers class that reads it exactly (``Tokenizer.hf_class``): ``GPT2Tokenizer`` for a
byte-level BPE and ``OpenAIGPTTokenizer`` for GPT-1's, which rebuild their pipeline around the vocabulary and merges
(so those two files are written too, in Hugging Face's format), and ``PreTrainedTokenizerFast``, which runs
tokenizer.json as it is, for any other (``char``: a ``GPT2Tokenizer`` would read it as a BPE and drop every space).
"""

from __future__ import annotations

import json
from typing import Any

from radford.tokenizers.base import TOKENIZER_JSON, Tokenizer

TOKENIZER_CONFIG = "tokenizer_config.json"
VOCAB, MERGES = "vocab.json", "merges.txt"
MERGES_HEADER = "#version: 0.2"  # the first line of GPT-2's, GPT-1's and Hugging Face's merges files


def hf_tokenizer_files(tokenizer: Tokenizer, model_max_length: int) -> dict[str, str]:
    """File name -> text: tokenizer.json, tokenizer_config.json, and for a BPE vocab.json + merges.txt."""
    text = tokenizer.to_json()
    model = json.loads(text)["model"]
    files = {TOKENIZER_JSON: text}
    if model["type"] == "BPE":
        merges = (merge if isinstance(merge, str) else " ".join(merge) for merge in model["merges"])
        files[VOCAB] = json.dumps(model["vocab"], ensure_ascii=False)
        files[MERGES] = "\n".join([MERGES_HEADER, *merges]) + "\n"
    eot = tokenizer.eot_token
    special = {"bos_token": eot, "eos_token": eot, "unk_token": model.get("unk_token") or eot}
    config: dict[str, Any] = {
        "tokenizer_class": tokenizer.hf_class,
        "model_max_length": model_max_length,
        # transformers would otherwise join " ." into "." on decoding, where radford's decode keeps the text.
        "clean_up_tokenization_spaces": False,
        **{name: token for name, token in special.items() if token is not None},
    }
    files[TOKENIZER_CONFIG] = json.dumps(config, indent=2, ensure_ascii=False)
    return files
