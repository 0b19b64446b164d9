"""Frechet distance between real and generated images, on the features of a small digit classifier.

The Frechet Inception Distance (Heusel et al. 2017) fits a Gaussian to a network's features of real images and
another to those of generated ones and measures the distance between the two: lower is closer. Inception's
ImageNet features say little about 32x32 digits and cannot be downloaded here, so radford trains its own feature
network, a small convolutional classifier of the real digits, and hands it to torchmetrics'
``FrechetInceptionDistance`` as a custom feature extractor. Its figures compare generators under the same
classifier only: they are not FID values on Inception's scale.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance

from radford.errors import RadfordError


class DigitClassifier(nn.Module):
    """Two strided 5x5 convolutions and a hidden layer of ``num_features`` units, whose activations are the
    features the Frechet distance compares; images (batch, channels, size, size) in [-1, 1]. Small enough to
    train in seconds on a CPU."""

    num_features = 128  # torchmetrics reads this rather than running a dummy image through the network

    def __init__(self, channels: int = 1, image_size: int = 32, num_classes: int = 10) -> None:
        super().__init__()
        if image_size % 4:
            raise RadfordError(f"the classifier halves twice: image_size must be a multiple of 4, not {image_size}")
        self.convs = nn.Sequential(
            nn.Conv2d(channels, 16, 5, stride=2, padding=2),
            nn.ReLU(),
            nn.Conv2d(16, 32, 5, stride=2, padding=2),
            nn.ReLU(),
        )
        self.hidden = nn.Linear(32 * (image_size // 4) ** 2, self.num_features)
        self.head = nn.Linear(self.num_features, num_classes)

    def forward(self, images: Tensor) -> Tensor:
        """The features (batch, num_features) the Frechet distance is computed on."""
        return F.relu(self.hidden(self.convs(images).flatten(1)))

    def logits(self, images: Tensor) -> Tensor:
        return self.head(self(images))


def train_classifier(
    images: Tensor, labels: Tensor, epochs: int = 5, batch_size: int = 64, learning_rate: float = 1e-3, seed: int = 0
) -> DigitClassifier:
    """A DigitClassifier fitted to labelled images (N, channels, size, size) in [-1, 1] with Adam; eval mode.
    The same seed gives the same classifier; the caller's random state is left as it was."""
    _, channels, size, _ = images.shape
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        classifier = DigitClassifier(channels, size, int(labels.max()) + 1)
        optimizer = torch.optim.Adam(classifier.parameters(), lr=learning_rate)
        for _ in range(epochs):
            for batch in torch.randperm(len(images)).split(batch_size):
                loss = F.cross_entropy(classifier.logits(images[batch]), labels[batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
    return classifier.eval()


@torch.no_grad()
def accuracy(classifier: DigitClassifier, images: Tensor, labels: Tensor, batch_size: int = 500) -> float:
    """The fraction of images the classifier labels right."""
    predictions = torch.cat([classifier.logits(batch).argmax(-1) for batch in images.split(batch_size)])
    return float((predictions == labels).float().mean())


@torch.no_grad()
def frechet_distance(features: nn.Module, real: Tensor, generated: Tensor, batch_size: int = 500) -> float:
    """The Frechet distance between Gaussians fitted to ``features`` of real and of generated images."""
    if min(len(real), len(generated)) < 2:
        raise RadfordError(
            f"a Frechet distance needs at least 2 images of each kind, got {len(real)} real and "
            f"{len(generated)} generated"
        )
    metric = FrechetInceptionDistance(feature=features.eval())
    for images, is_real in ((real, True), (generated, False)):
        for batch in images.split(batch_size):
            metric.update(batch, real=is_real)
    return float(metric.compute())
