"""iGPT's colour palette (Chen et al. 2020, "Generative Pretraining from Pixels", section 3.2): k-means clusters
of pixel values, so that a pixel is one token out of a few rather than a value to regress. iGPT clusters RGB
values into 512 colours; grey digits need only a handful of grey levels.

It is registered as a tokenizer (``igpt-palette``) but is no subclass of radford's text ``Tokenizer``: it turns
pixels, not text, into ids.
"""

from __future__ import annotations

import numpy as np
from radford.api import RadfordError
from sklearn.cluster import KMeans


class Palette:
    """``colors`` k-means centres of pixel values, sorted dark to bright: id 0 is the darkest colour.

    Args:
        colors: palette size, which is the model's vocabulary.
        sample_pixels: k-means fits on at most this many pixels drawn at random (enough for a few centres).
        seed: the draw and k-means' initialisation.
    """

    def __init__(self, colors: int = 8, sample_pixels: int = 100_000, seed: int = 0) -> None:
        if colors < 2:
            raise RadfordError(f"a palette needs at least 2 colors, got {colors}")
        self.colors, self.sample_pixels, self.seed = colors, sample_pixels, seed
        self.centers: np.ndarray | None = None  # (colors, channels) in [0, 1]

    @classmethod
    def from_centers(cls, centers: np.ndarray) -> Palette:
        """A trained palette from its centres (as a model keeps them)."""
        centers = np.asarray(centers, dtype=np.float32)
        palette = cls(colors=len(centers))
        palette.centers = centers
        return palette

    @property
    def needs_training(self) -> bool:
        return self.centers is None

    @property
    def vocab_size(self) -> int:
        return self.colors

    def train(self, pixels: np.ndarray) -> None:
        """Fit the centres to pixels ``(N, channels)`` with values in [0, 1]."""
        pixels = np.asarray(pixels, dtype=np.float32)
        rng = np.random.default_rng(self.seed)
        if len(pixels) > self.sample_pixels:
            pixels = pixels[rng.choice(len(pixels), self.sample_pixels, replace=False)]
        distinct = len(np.unique(pixels, axis=0))
        if distinct < self.colors:
            raise RadfordError(
                f"the images hold {distinct} distinct pixel values: too few for a palette of "
                f"{self.colors} colors; choose colors <= {distinct}"
            )
        kmeans = KMeans(n_clusters=self.colors, n_init=1, random_state=self.seed).fit(pixels)
        centers = kmeans.cluster_centers_.astype(np.float32)
        self.centers = centers[np.argsort(centers.sum(axis=1), kind="stable")]

    def _trained(self) -> np.ndarray:
        if self.centers is None:
            raise RadfordError("the palette is not trained yet: call train(pixels) first")
        return self.centers

    def encode(self, pixels: np.ndarray) -> np.ndarray:
        """Ids ``(...)`` of the nearest centre to each pixel ``(..., channels)``."""
        centers = self._trained()
        distances = ((np.asarray(pixels, dtype=np.float32)[..., None, :] - centers) ** 2).sum(-1)
        return distances.argmin(-1)

    def decode(self, ids: np.ndarray) -> np.ndarray:
        """Pixels ``(..., channels)`` for ids ``(...)``."""
        return self._trained()[np.asarray(ids)]
