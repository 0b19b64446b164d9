"""DCGAN: deep convolutional generative adversarial networks (Radford, Metz and Chintala 2015, "Unsupervised
Representation Learning with Deep Convolutional Generative Adversarial Networks").

The two networks follow the paper's architecture guidelines (section 3): strided convolutions in the
discriminator and fractionally strided ones in the generator instead of pooling, no fully connected hidden
layers, batch norm in both except the generator's output and the discriminator's input, ReLU with a Tanh output
in the generator, LeakyReLU (slope 0.2) in the discriminator. Layer for layer, and name for name, they are the
widely used PyTorch reference (pytorch/examples ``dcgan/main.py``: ``netG.main``, ``netD.main``), so its
``state_dict`` files load into ``DCGAN.generator`` and ``DCGAN.discriminator``; the discriminator here returns
logits, which the reference passes through a Sigmoid (a layer without weights), for a numerically stable loss.
"""

from __future__ import annotations

import math
from itertools import pairwise
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from PIL import Image
from torch import Tensor, nn

from radford.errors import RadfordError
from radford.io import write_atomically
from radford.models.common import adam, logging_step
from radford.throughput import flop_count, on_meta

FEATURE_GRID = 4  # section 5.1: each layer's features max-pooled to a 4x4 spatial grid
GRID_PADDING = 2  # pixels of black between the images of a grid


def _halvings(image_size: int) -> int:
    """Stride-2 layers between 4x4 and ``image_size``: 4 for the paper's 64x64."""
    if image_size < 32 or image_size & (image_size - 1):
        raise RadfordError(f"image_size must be a power of two from 32 up (32, 64, 128, ...), got {image_size}")
    return image_size.bit_length() - 3


class Generator(nn.Module):
    """z (batch, latent_dim, 1, 1) to images (batch, channels, size, size) in [-1, 1]: a 4x4 projection of z, then
    fractionally strided convolutions that double the size and halve the width (the paper's figure 1)."""

    def __init__(self, image_size: int, channels: int, latent_dim: int, width: int) -> None:
        super().__init__()
        n = _halvings(image_size)
        widths = [width * 2**i for i in reversed(range(n))]  # 512, 256, 128, 64 at 64x64
        # The first layer is the paper's "projection and reshape" of z, written as a convolution on a 1x1 input.
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, widths[0], 4, 1, 0, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(True),
        ]
        for wide, narrow in pairwise(widths):
            layers += [nn.ConvTranspose2d(wide, narrow, 4, 2, 1, bias=False), nn.BatchNorm2d(narrow), nn.ReLU(True)]
        # No batch norm at the output (section 3: it made samples oscillate), and Tanh to match pixels in [-1, 1].
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.main(z)


class Discriminator(nn.Module):
    """Images (batch, channels, size, size) to one logit each (batch,) that the image is real: strided
    convolutions that halve the size and double the width, then a 4x4 convolution to a single unit."""

    def __init__(self, image_size: int, channels: int, width: int) -> None:
        super().__init__()
        n = _halvings(image_size)
        widths = [width * 2**i for i in range(n)]  # 64, 128, 256, 512 at 64x64
        # No batch norm on the input layer (section 3).
        layers: list[nn.Module] = [nn.Conv2d(channels, widths[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        for narrow, wide in pairwise(widths):
            layers += [nn.Conv2d(narrow, wide, 4, 2, 1, bias=False), nn.BatchNorm2d(wide), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(widths[-1], 1, 4, 1, 0, bias=False))
        self.main = nn.Sequential(*layers)

    def forward(self, images: Tensor) -> Tensor:
        return self.main(images).view(-1)

    def features(self, images: Tensor) -> Tensor:
        """Every convolutional layer's activations max-pooled to 4x4, flattened and concatenated (section 5.1):
        (batch, 16 * (64 + 128 + 256)) at 32x32 and width 64."""
        pooled = []
        x = images
        for layer in self.main[:-1]:  # the last layer is the real/fake unit
            x = layer(x)
            if isinstance(layer, nn.LeakyReLU):
                pooled.append(F.adaptive_max_pool2d(x, FEATURE_GRID).flatten(1))
        return torch.cat(pooled, dim=1)


def _images(batch: Tensor | tuple[Tensor, ...] | list[Tensor]) -> Tensor:
    """The images of a batch: images alone, or with labels (which are not used)."""
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def image_grid(images: Tensor, columns: int | None = None, padding: int = GRID_PADDING) -> Image.Image:
    """Images (N, channels, H, W) in [-1, 1] as one picture: rows of ``columns`` images (default: a square grid)
    on black, ``padding`` pixels apart and around; the last row is short when N is not a multiple of ``columns``."""
    images = images.detach().float().cpu()
    n, channels, height, width = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = -(-n // columns)
    canvas = np.zeros((padding + rows * (height + padding), padding + columns * (width + padding), channels), np.uint8)
    pixels = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for i, image in enumerate(pixels):
        top, left = padding + (i // columns) * (height + padding), padding + (i % columns) * (width + padding)
        canvas[top : top + height, left : left + width] = image
    return Image.fromarray(canvas[:, :, 0] if channels == 1 else canvas)


def image_format(path: str | Path) -> str:
    """The Pillow format a picture's suffix names (.png: PNG); a suffix Pillow cannot write is one clear error."""
    suffix = Path(path).suffix.lower()
    formats = {s: f for s, f in Image.registered_extensions().items() if f in Image.SAVE}
    if suffix not in formats:
        raise RadfordError(
            f"cannot write an image to {path}: unknown suffix {suffix!r}; valid: .png, .jpg, .webp, "
            f".bmp, .gif, .tif or another that Pillow writes"
        )
    return formats[suffix]


def save_image(image: Image.Image, path: str | Path) -> Path:
    """Write a picture whole or not at all, in the format its suffix names (.png, .jpg, ...)."""
    path = Path(path)
    fmt = image_format(path)
    # The temporary file's name hides the suffix from Pillow, so the format is named.
    write_atomically(path, lambda tmp: image.save(tmp, format=fmt))
    return path


class DCGAN(L.LightningModule):
    """A generator and a discriminator trained against each other, with the paper's settings (section 4): Adam at
    2e-4 with beta1 0.5 for both, weights from N(0, 0.02), batch-norm scales from N(1, 0.02). A batch is images
    (batch, channels, size, size) in [-1, 1], alone or with labels (which are not used).

    Args:
        image_size: height and width of the images, a power of two from 32 up.
        channels: 1 (grey) or 3 (RGB).
        latent_dim: size of the noise vector z, drawn from N(0, 1).
        width: channels of the discriminator's first layer and the generator's last hidden layer; the other
            layers double it towards the 4x4 end (64 gives the reference's 64-128-256-512).
        learning_rate, betas: Adam's, for both networks.
        grid_size: samples in the grid saved as ``samples/epoch_NNN.png`` in the run folder after each epoch (and
            to TensorBoard), always from the same noise so that the grids show training progress; 0 saves none.
    """

    feature_input = "images"  # radford.eval.probe.ImageFeatures
    feature_description = "discriminator's convolutional activations, each layer max-pooled to 4x4"  # section 5.1

    def __init__(
        self,
        image_size: int = 64,
        channels: int = 3,
        latent_dim: int = 100,
        width: int = 64,
        learning_rate: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        grid_size: int = 64,
    ) -> None:
        super().__init__()
        if channels not in (1, 3):
            raise RadfordError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
        for name, value in (("latent_dim", latent_dim), ("width", width)):
            if value < 1:
                raise RadfordError(f"{name} must be positive, got {value}")
        if grid_size < 0:
            raise RadfordError(f"grid_size must be >= 0 (0 saves no grids), got {grid_size}")
        self.save_hyperparameters()
        self.generator = Generator(image_size, channels, latent_dim, width)
        self.discriminator = Discriminator(image_size, channels, width)
        self._init_parameters()
        # Two optimizers stepped in turn (section 4): Lightning's manual optimisation.
        self.automatic_optimization = False
        # Fixed noise for the epoch grids; not saved, since the constructor makes the same again.
        fixed = torch.randn(grid_size, latent_dim, 1, 1, generator=torch.Generator().manual_seed(0))
        self.register_buffer("fixed_noise", fixed, persistent=False)

    def _init_parameters(self) -> None:
        # Section 4: all weights from a zero-centred normal of deviation 0.02; batch-norm scales around 1, as the
        # reference does, and shifts at 0.
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(module.weight, 0.0, 0.02)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.normal_(module.weight, 1.0, 0.02)
                nn.init.zeros_(module.bias)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.hparams.channels, self.hparams.image_size, self.hparams.image_size

    def noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n latent vectors (n, latent_dim, 1, 1) from N(0, 1)."""
        z = torch.randn(n, self.hparams.latent_dim, 1, 1, generator=generator)
        return z.to(self.device)

    def forward(self, z: Tensor) -> Tensor:
        """Images (batch, channels, size, size) in [-1, 1] for latent vectors (batch, latent_dim, 1, 1)."""
        return self.generator(z)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n images from random noise."""
        return self(self.noise(n, generator))

    @torch.no_grad()
    def interpolate(self, rows: int, steps: int, generator: torch.Generator | None = None) -> Tensor:
        """``rows`` walks in latent space (section 6.1, figure 4): each from one random z to another in ``steps``
        evenly spaced points on the straight line between them; images (rows * steps, channels, size, size)."""
        if steps < 2:
            raise RadfordError(f"steps must be at least 2 (a walk's two ends), got {steps}")
        start, end = self.noise(rows, generator), self.noise(rows, generator)
        t = torch.linspace(0, 1, steps, device=self.device).view(1, steps, 1, 1, 1)
        z = start[:, None] + t * (end - start)[:, None]
        return self(z.flatten(0, 1))

    @torch.no_grad()
    def features(self, images: Tensor) -> Tensor:
        """The discriminator's features of images in [-1, 1], for linear probes (section 5.1)."""
        return self.discriminator.features(images)

    def discriminator_loss(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The discriminator's loss, maximising log D(x) + log(1 - D(G(z))), and its logits on real and fake. Real
        and fake go through it as separate batches, each normalised by its own statistics, as in the paper's code
        and the reference."""
        logits_real = self.discriminator(real)
        logits_fake = self.discriminator(fake)
        loss = F.binary_cross_entropy_with_logits(
            logits_real, torch.ones_like(logits_real)
        ) + F.binary_cross_entropy_with_logits(logits_fake, torch.zeros_like(logits_fake))
        return loss, logits_real, logits_fake

    def generator_loss(self, fake: Tensor) -> Tensor:
        """The generator's loss: maximise log D(G(z)) rather than minimise log(1 - D(G(z))), which saturates while
        the discriminator wins easily (Goodfellow et al. 2014, section 3)."""
        logits = self.discriminator(fake)
        return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))

    def training_step(self, batch: Tensor | tuple[Tensor, ...] | list[Tensor], batch_idx: int) -> None:
        real = _images(batch)
        opt_d, opt_g = self.optimizers()
        fake = self(self.noise(real.shape[0]))

        d_loss, logits_real, logits_fake = self.discriminator_loss(real, fake.detach())
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d_loss)
        opt_d.step()

        g_loss = self.generator_loss(fake)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(g_loss)
        opt_g.step()

        if logging_step(self._trainer):
            self.log_dict({"d_loss": d_loss, "g_loss": g_loss}, prog_bar=True)
            # D(x) and D(G(z)): the discriminator's mean probability that real and generated images are real.
            self.log_dict(
                {"d_x": logits_real.detach().sigmoid().mean(), "d_g_z": logits_fake.detach().sigmoid().mean()}
            )

    def training_flops(self, batch: Tensor | tuple[Tensor, ...] | list[Tensor]) -> int:
        """Model FLOPs of a training step on ``batch`` for ``radford.throughput.SpeedMonitor``'s MFU, counted on a meta
        copy (nothing computed, no random numbers drawn): the generator's forward, the discriminator on real and
        generated images, and both backward passes, the generator's through the discriminator."""
        twin = on_meta(self)
        real = _images(batch).to("meta")

        def step() -> None:
            fake = twin(torch.empty(real.shape[0], self.hparams.latent_dim, 1, 1, device="meta"))
            twin.discriminator_loss(real, fake.detach())[0].backward()
            twin.generator_loss(fake).backward()

        return flop_count(step)

    def on_train_epoch_end(self) -> None:
        if self.hparams.grid_size and self.trainer.is_global_zero:
            self.save_grid(self.current_epoch)

    def save_grid(self, epoch: int) -> Path:
        """The samples from the fixed noise as ``samples/epoch_NNN.png`` in the run's folder (``samples_folder``),
        and as the ``samples`` image of TensorBoard's step ``epoch`` when that logger is on."""
        training = self.training
        self.eval()  # batch norm from its running statistics, as when sampling from a checkpoint
        with torch.no_grad():
            images = self(self.fixed_noise)
        self.train(training)
        grid = image_grid(images)
        path = save_image(grid, self.samples_folder() / f"epoch_{epoch:03d}.png")
        layout = "HW" if grid.mode == "L" else "HWC"
        for logger in self.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image("samples", np.asarray(grid), epoch, dataformats=layout)
        return path

    def samples_folder(self) -> Path:
        """Where ``save_grid`` writes: ``samples/`` in the first logger's folder when it keeps its files on disk (CSV
        and TensorBoard: under ``radford fit``, the run folder), else in the trainer's ``default_root_dir`` (under
        ``radford fit``, the run folder too). Not the working directory, where ``trainer.log_dir`` sent them with a
        remote logger: MLflow's has no folder (None), Weights & Biases' is ``.`` unless told. And not
        ``trainer.log_dir`` at all: it broadcasts, a collective every rank must enter, and only rank zero saves
        grids."""
        logger = self.loggers[0] if self.loggers else None
        if isinstance(logger, (CSVLogger, TensorBoardLogger)):
            return Path(logger.log_dir) / "samples"
        return Path(self.trainer.default_root_dir) / "samples"

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        hp = self.hparams
        return [
            adam(torch.optim.Adam, self, net.parameters(), hp.learning_rate, hp.betas)
            for net in (self.discriminator, self.generator)
        ]
