"""The sentiment neuron as OpenAI released it: the ``model/`` folder of
``openai/generating-reviews-discovering-sentiment``: fifteen arrays ``0.npy`` ... ``14.npy`` that its ``encoder.py``
hands to TensorFlow's variables in the order it creates them:

    0       embedding            (vocab, embedding)
    1       wx                   (embedding, 4 hidden)
    2-5     wh, in four blocks   (hidden, hidden) each; encoder.py concatenates them along the columns
    6       wmx                  (embedding, hidden)
    7       wmh                  (hidden, hidden)
    8       b                    (4 hidden)
    9-12    gx, gh, gmx, gmh     weight-norm gains: (4 hidden), (4 hidden), (hidden), (hidden)
    13, 14  output layer w, b    (hidden, vocab), (vocab); no weight norm (encoder.py's ``out_wn=False``)

radford's ``mlstm`` keeps those names and the (inputs, outputs) layout, so reading the release is a rename; sizes
come from the arrays, so a smaller model written in the same layout loads too. The released model is 4,096 units
over a 64-wide embedding of the 256 bytes.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch

from radford.checkpoints import Weights
from radford.errors import RadfordError
from radford.models.mlstm import MLSTM
from radford.tokenizers.bytes import VOCAB_SIZE, ByteTokenizer

FILES = 15
# State-dict names of the files, in order; wh's four column blocks (files 2-5) are one parameter.
NAMES = (
    "embd.weight",
    "rnn.wx",
    "rnn.wh",
    "rnn.wh",
    "rnn.wh",
    "rnn.wh",
    "rnn.wmx",
    "rnn.wmh",
    "rnn.b",
    "rnn.gx",
    "rnn.gh",
    "rnn.gmx",
    "rnn.gmh",
    "out.weight",
    "out.bias",
)
WH_BLOCKS = 4


def _expected_shapes(vocab: int, embedding: int, hidden: int) -> list[tuple[int, ...]]:
    return [
        (vocab, embedding),
        (embedding, 4 * hidden),
        *[(hidden, hidden)] * WH_BLOCKS,
        (embedding, hidden),
        (hidden, hidden),
        (4 * hidden,),
        (4 * hidden,),
        (4 * hidden,),
        (hidden,),
        (hidden,),
        (hidden, vocab),
        (vocab,),
    ]


def _read_array(file: Path) -> np.ndarray:
    try:
        array = np.load(file, allow_pickle=False)  # a .npy never runs code
    except (OSError, ValueError, EOFError) as error:
        raise RadfordError(f"cannot read {file}: truncated, or not a .npy array ({error})") from error
    if array.dtype.kind != "f":
        raise RadfordError(f"{file} holds {array.dtype} values, not floating-point weights")
    return array


class SentimentNeuronRelease:
    """The ``radford.formats`` entry for OpenAI's sentiment-neuron release (read only)."""

    description = (
        "OpenAI's sentiment-neuron release (0.npy ... 14.npy, the model/ folder of "
        "openai/generating-reviews-discovering-sentiment)"
    )

    def detect(self, folder: Path) -> bool:
        return all((folder / f"{i}.npy").is_file() for i in range(FILES))

    def read(self, folder: Path) -> Weights:
        arrays = [_read_array(folder / f"{i}.npy") for i in range(FILES)]
        if arrays[0].ndim != 2 or arrays[7].ndim != 2:
            raise RadfordError(
                f"{folder / '0.npy'} and {folder / '7.npy'} must be matrices (the byte embedding and "
                f"wmh), not of shapes {arrays[0].shape} and {arrays[7].shape}"
            )
        (vocab, embedding), hidden = arrays[0].shape, arrays[7].shape[0]
        if vocab != VOCAB_SIZE:
            raise RadfordError(
                f"{folder / '0.npy'} embeds {vocab} tokens; the sentiment neuron reads the {VOCAB_SIZE} bytes"
            )
        for i, (array, shape) in enumerate(zip(arrays, _expected_shapes(vocab, embedding, hidden), strict=True)):
            if array.shape != shape:
                raise RadfordError(
                    f"{folder / f'{i}.npy'} ({NAMES[i]}) is {array.shape}, not {shape}: the 15 files "
                    f"of a release with {vocab} tokens, {embedding}-wide embedding and {hidden} units"
                )
        tensors = [torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)) for a in arrays]
        state_dict = dict(zip(NAMES, tensors, strict=True))
        state_dict["rnn.wh"] = torch.cat(tensors[2 : 2 + WH_BLOCKS], dim=1)  # as encoder.py's params[2]
        state_dict["out.weight"] = tensors[13].T.contiguous()  # nn.Linear stores (outputs, inputs)
        hparams = {"vocab_size": vocab, "embedding_size": embedding, "hidden_size": hidden, "weight_norm": True}
        # Bytes in, bytes out: the tokenizer that radford generate and radford probe encode texts with.
        return Weights(MLSTM, hparams, state_dict, ByteTokenizer())

    def exports(self, model_class: type[L.LightningModule]) -> bool:
        return False

    def export(self, weights: Weights, folder: Path) -> None:
        raise RadfordError("radford reads the sentiment-neuron release but does not write it")


SENTIMENT_NEURON = SentimentNeuronRelease()
