"""Image GPT (Chen, Radford et al. 2020, "Generative Pretraining from Pixels"): GPT-2 trained to predict the next
pixel of images read in raster order, each pixel a token of a k-means colour palette (section 3.2).

It is radford's GPT (imported from ``radford.api``) with image-sized defaults and three additions: the palette
kept in a buffer, so that a checkpoint decodes its own samples; image features for linear probes (section 2.4,
through GPT's ``feature_ids`` and ``pooled_features``); and
``complete``, which samples the rest of an image from its first rows (as the paper's figure 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from radford.api import GPT, RadfordError
from torch import Tensor

# Every sequence starts with this id at position 0, which only it ever occupies: wte[START] + wpe[0] is then a
# free learned vector, the start-of-sequence embedding, that lets the model predict the first pixel too; and,
# being an ordinary colour, it adds no output class that sampling could pick.
START = 0


def with_start(ids: Tensor) -> Tensor:
    """Pixel ids ``(N, L)`` as model input: START, then every pixel but the last (each predicts the next)."""
    return torch.cat([torch.full_like(ids[:, :1], START), ids[:, :-1]], dim=1)


class IGPT(GPT):
    """iGPT: radford's GPT-2 over palette ids. ``block_size`` is the pixels of an image (height x width);
    ``vocab_size`` the palette's colours, linked from the data module; ``channels`` those of a palette colour.
    Every other argument is GPT's, with defaults for small images on a CPU; ``post_norm`` is there because
    checkpoints record it, and must stay False: iGPT's blocks are GPT-2's, which normalise each sub-block's input.

    Its features (the features protocol) are of images: ``features(ids)`` takes palette ids ``(N, pixels)`` and reads
    block ``feature_layer`` (None: the middle one)."""

    feature_input = "images"
    feature_layer: int | None = None

    @property
    def feature_block(self) -> int:
        """The block whose layer-normalised input ``features`` reads: ``feature_layer``, or the middle one."""
        return self.hparams.n_layer // 2 if self.feature_layer is None else self.feature_layer

    @property
    def feature_description(self) -> str:
        """What ``features`` returns (the features protocol): GPT's own description, the last token's hidden state,
        is not iGPT's readout, and which block it reads changes with ``feature_layer``."""
        layer = self.feature_block
        where = (
            "final LayerNorm output" if layer == self.hparams.n_layer else f"layer-normalised input of block {layer}"
        )
        return f"{where}, average-pooled over the pixels"

    def __init__(
        self,
        vocab_size: int = 8,
        block_size: int = 64,
        n_layer: int = 4,
        n_head: int = 4,
        n_embd: int = 64,
        dropout: float = 0.0,
        bias: bool = True,
        post_norm: bool = False,
        learning_rate: float = 3e-3,
        min_learning_rate: float = 3e-4,
        weight_decay: float = 0.01,
        betas: tuple[float, float] = (0.9, 0.95),
        warmup_steps: int = 100,
        decay_steps: int | None = None,
        channels: int = 1,
    ):
        if post_norm:
            raise RadfordError("iGPT uses GPT-2's pre-norm blocks: post_norm must be False")
        super().__init__(
            vocab_size=vocab_size,
            block_size=block_size,
            n_layer=n_layer,
            n_head=n_head,
            n_embd=n_embd,
            dropout=dropout,
            bias=bias,
            post_norm=post_norm,
            learning_rate=learning_rate,
            min_learning_rate=min_learning_rate,
            weight_decay=weight_decay,
            betas=betas,
            warmup_steps=warmup_steps,
            decay_steps=decay_steps,
        )
        # Filled from the data module's palette when training starts (see setup).
        self.register_buffer("palette", torch.zeros(vocab_size, channels))

    def setup(self, stage: str) -> None:
        """Check the images fit the model and keep the data module's palette in the checkpoint."""
        data = getattr(self.trainer, "datamodule", None)
        if not (hasattr(data, "sequence_length") and hasattr(data, "palette")):  # not a PixelData
            return
        centers = torch.as_tensor(data.palette().centers)  # fit to the training images if not yet
        if centers.shape != self.palette.shape:
            raise RadfordError(
                f"the data's palette is {tuple(centers.shape)} (colors, channels) but the model's is "
                f"{tuple(self.palette.shape)}: set model.init_args.vocab_size and channels to match"
            )
        self.palette.copy_(centers)

    def feature_ids(self, ids: Sequence[Any]) -> list[list[int]]:
        """Images as ``features`` reads them: palette ids ``(N, pixels)``, each after the start token."""
        if not isinstance(ids, Tensor) or ids.dim() != 2:
            raise RadfordError(
                "iGPT's features are of images: give palette ids (N, pixels) as a tensor, not "
                f"{type(ids).__name__ if not isinstance(ids, Tensor) else tuple(ids.shape)}"
            )
        return with_start(ids).tolist()

    def pooled_features(self, ids: Tensor, lengths: Tensor) -> Tensor:
        """iGPT's linear-probe features (section 2.4): the layer-normalised input of block ``feature_layer`` (what
        its attention reads; ``n_layer`` means the final LayerNorm's output), average-pooled over the positions. The
        default is the middle block: the paper finds the best features there rather than at the end, where the model
        specialises in predicting pixels."""
        n_layer, layer = self.hparams.n_layer, self.feature_block
        if not 0 <= layer <= n_layer:
            raise RadfordError(f"feature_layer must be in 0..{n_layer} (n_layer), got {layer}")
        norm = self.transformer.h[layer].ln_1 if layer < n_layer else self.transformer.ln_f
        captured: list[Tensor] = []
        hook = norm.register_forward_hook(lambda module, args, output: captured.append(output))
        try:
            self.hidden_states(ids)
        finally:
            hook.remove()
        return captured[0].mean(dim=1)  # every image has as many pixels: no padding to leave out

    def complete(
        self,
        ids: Tensor,
        given: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Pixel ids ``(N, L)`` whose first ``given`` pixels are kept and the rest sampled, one at a time."""
        length = ids.shape[1]
        if not 0 <= given < length:
            raise RadfordError(f"given must be in 0..{length - 1} (pixels kept of {length}), got {given}")
        prompt = with_start(ids[:, : given + 1])  # START, then the given pixels
        steps = self.generate(prompt, length - given, temperature=temperature, top_k=top_k, generator=generator)
        return torch.cat([ids[:, :given], torch.stack(list(steps), dim=1)], dim=1)
