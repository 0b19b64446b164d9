"""DCGAN: the PyTorch reference's layers, names and parameter counts, exact parity with it on shared weights, the
paper's init, any power-of-two size, one-line errors; a few training steps through the CLI write PNG grids, log the
losses and leave a checkpoint ``radford.load`` reads; and a short run on real digits beats an untrained generator."""

from __future__ import annotations

import csv

import pytest
import torch
from lightning.pytorch.loggers import CSVLogger, Logger
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
from torch.utils.data import DataLoader

import radford
from radford.data.images import ImageData, load_labelled
from radford.errors import RadfordError
from radford.eval.frechet import frechet_distance, train_classifier
from radford.models.dcgan import DCGAN, GRID_PADDING, image_grid
from tests.helpers import error_line, radford_cli


def reference_nets(nc: int = 3, nz: int = 100, ngf: int = 64, ndf: int = 64) -> tuple[nn.Module, nn.Module]:
    """netG and netD of pytorch/examples dcgan/main.py at 64x64, transcribed layer for layer as the oracle."""

    def weights_init(m: nn.Module) -> None:  # the reference's own init
        if "Conv" in type(m).__name__:
            m.weight.data.normal_(0.0, 0.02)
        elif "BatchNorm" in type(m).__name__:
            m.weight.data.normal_(1.0, 0.02)
            m.bias.data.fill_(0)

    class NetG(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.main = nn.Sequential(
                nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False),
                nn.BatchNorm2d(ngf * 8),
                nn.ReLU(True),
                nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ngf * 4),
                nn.ReLU(True),
                nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ngf * 2),
                nn.ReLU(True),
                nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ngf),
                nn.ReLU(True),
                nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
                nn.Tanh(),
            )

        def forward(self, z):
            return self.main(z)

    class NetD(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.main = nn.Sequential(
                nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ndf * 2),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ndf * 4),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ndf * 8),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False),
                nn.Sigmoid(),
            )

        def forward(self, x):
            return self.main(x).view(-1, 1)

    net_g, net_d = NetG(), NetD()
    net_g.apply(weights_init)
    net_d.apply(weights_init)
    return net_g, net_d


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts_equal_the_pytorch_reference():
    model = DCGAN(image_size=64, channels=3, latent_dim=100, width=64)
    assert count(model.generator) == 3_576_704
    assert count(model.discriminator) == 2_765_568


def test_reference_weights_load_and_compute_the_same():
    torch.manual_seed(0)
    net_g, net_d = reference_nets()
    model = DCGAN()
    # Strict loads: the reference's state_dict files have exactly these names and shapes.
    model.generator.load_state_dict(net_g.state_dict())
    model.discriminator.load_state_dict(net_d.state_dict())
    z, images = torch.randn(6, 100, 1, 1), torch.rand(6, 3, 64, 64) * 2 - 1
    for train in (True, False):  # batch statistics, then running statistics
        for net in (model, net_g, net_d):
            net.train(train)
        assert torch.equal(model(z), net_g(z))
        # The discriminator gives logits; the reference the Sigmoid of them.
        torch.testing.assert_close(model.discriminator(images).sigmoid(), net_d(images).view(-1), rtol=0, atol=1e-6)


@torch.no_grad()
def test_init_follows_the_paper():
    torch.manual_seed(0)
    model = DCGAN()
    convs = [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    weights = torch.cat([w.flatten() for w in convs])
    assert abs(float(weights.mean())) < 1e-3 and float(weights.std()) == pytest.approx(0.02, rel=0.02)
    scales = torch.cat([m.weight for m in norms])
    assert float(scales.mean()) == pytest.approx(1.0, abs=0.005)
    assert float(scales.std()) == pytest.approx(0.02, rel=0.1)
    assert all(torch.equal(m.bias, torch.zeros_like(m.bias)) for m in norms)
    assert not any(m.bias is not None for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)))


@pytest.mark.parametrize(
    ("image_size", "channels", "widths"),
    [(32, 1, (8, 16, 32)), (64, 3, (8, 16, 32, 64)), (128, 3, (8, 16, 32, 64, 128))],
)
def test_any_power_of_two_size(image_size, channels, widths):
    model = DCGAN(image_size=image_size, channels=channels, latent_dim=10, width=8).eval()
    images = model.sample(3)
    assert images.shape == (3, channels, image_size, image_size)
    assert images.min() >= -1 and images.max() <= 1
    assert model.discriminator(images).shape == (3,)
    # Section 5.1: each convolutional layer max-pooled to 4x4 and concatenated.
    assert model.features(images).shape == (3, 16 * sum(widths))
    # No batch norm on the generator's output or the discriminator's input (section 3).
    assert isinstance(model.generator.main[-2], nn.ConvTranspose2d)
    assert isinstance(model.discriminator.main[1], nn.LeakyReLU)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image_size": 48}, "image_size must be a power of two from 32 up (32, 64, 128, ...), got 48"),
        ({"image_size": 16}, "got 16"),
        ({"channels": 2}, "channels must be 1 (grey) or 3 (RGB), got 2"),
        ({"width": 0}, "width must be positive, got 0"),
        ({"grid_size": -1}, "grid_size must be >= 0"),
    ],
)
def test_bad_arguments_are_one_line_errors(kwargs, message):
    with pytest.raises(RadfordError) as error:
        DCGAN(**kwargs)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_interpolation_walks_between_two_samples():
    model = DCGAN(image_size=32, channels=1, width=8).eval()
    walks = model.interpolate(2, 5, torch.Generator().manual_seed(3)).view(2, 5, 1, 32, 32)
    # The walks start at the first two samples of the same seed and end at the next two (up to the rounding of
    # convolutions over batches of other sizes).
    samples = model.sample(4, torch.Generator().manual_seed(3))
    torch.testing.assert_close(walks[:, 0], samples[:2], rtol=0, atol=2e-3)
    torch.testing.assert_close(walks[:, -1], samples[2:], rtol=0, atol=2e-3)
    steps = (walks[:, 1:] - walks[:, :-1]).abs().mean()
    assert steps < (walks[:, -1] - walks[:, 0]).abs().mean()


def test_image_grid_layout():
    images = torch.stack([torch.full((3, 4, 5), v) for v in (-1.0, 1.0, 0.0)])
    picture = image_grid(images, columns=2)
    assert picture.size == (GRID_PADDING + 2 * (5 + GRID_PADDING), GRID_PADDING + 2 * (4 + GRID_PADDING))
    assert picture.mode == "RGB"
    assert picture.getpixel((GRID_PADDING, GRID_PADDING)) == (0, 0, 0)  # -1 is black
    assert picture.getpixel((2 * GRID_PADDING + 5, GRID_PADDING)) == (255, 255, 255)  # 1 is white
    assert picture.getpixel((GRID_PADDING, 2 * GRID_PADDING + 4)) == (128, 128, 128)  # the third starts row two
    assert image_grid(images[:, :1]).mode == "L"


class RemoteLogger(Logger):
    """A logger that keeps nothing on disk, as MLflow's with a tracking server: its ``save_dir`` is None."""

    name, version, save_dir = "remote", 0, None

    def log_metrics(self, metrics, step=None) -> None:
        pass

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass


@pytest.mark.parametrize("logger", ["remote", "csv", "none"])
def test_grids_go_in_the_run_folder_never_the_working_directory(tmp_path, monkeypatch, quiet_trainer, logger):
    work, run = tmp_path / "work", tmp_path / "runs" / "dcgan" / "version_0"
    work.mkdir()
    monkeypatch.chdir(work)
    loggers = {
        "remote": RemoteLogger(),
        "csv": CSVLogger(save_dir=run.parent, name="", version=run.name),  # radford fit's: its folder is the run
        "none": False,
    }[logger]
    trainer = quiet_trainer(max_epochs=1, limit_train_batches=1, logger=loggers, default_root_dir=run)
    images = torch.rand(4, 1, 32, 32) * 2 - 1
    trainer.fit(DCGAN(image_size=32, channels=1, width=4, latent_dim=8, grid_size=4), DataLoader(images, batch_size=4))
    assert (run / "samples" / "epoch_000.png").is_file()
    assert not any(work.iterdir()), f"written in the working directory: {sorted(work.rglob('*'))}"


@pytest.mark.slow
def test_fit_writes_grids_logs_losses_and_a_loadable_checkpoint(tmp_path):
    result = radford_cli(
        "fit",
        "--recipe",
        "dcgan-digits",
        "--trainer.max_epochs",
        "2",
        "--trainer.limit_train_batches",
        "2",
        "--model.init_args.width",
        "8",
        "--model.init_args.grid_size",
        "16",
        "--trainer.log_every_n_steps",
        "1",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "runs" / "dcgan-digits" / "version_0"
    grids = sorted((run / "samples").iterdir())
    assert [g.name for g in grids] == ["epoch_000.png", "epoch_001.png"]
    with Image.open(grids[-1]) as grid:
        assert grid.format == "PNG" and grid.mode == "L" and grid.size == (4 * (32 + GRID_PADDING) + GRID_PADDING,) * 2
    with open(run / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    logged = [row for row in rows if row.get("d_loss")]
    assert len(logged) == 4 and all(0 < float(row["d_x"]) < 1 for row in logged)
    assert {"d_loss", "g_loss", "d_x", "d_g_z"} <= rows[0].keys()
    events = EventAccumulator(str(run), size_guidance={"images": 0})
    events.Reload()
    assert len(events.Images("samples")) == 2
    model = radford.load(run / "checkpoints" / "last.ckpt")
    assert isinstance(model, DCGAN) and not model.training
    assert model.sample(2).shape == (2, 1, 32, 32)


def test_setting_a_linked_value_on_the_data_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    line = error_line(
        capsys,
        "fit",
        "--recipe",
        "dcgan-digits",
        "--trainer.max_epochs",
        "1",
        "--trainer.limit_train_batches",
        "1",
        "--model.init_args.width",
        "8",
        "--data.init_args.channels",
        "3",
    )
    assert line == (
        "radford: error: data.init_args.channels is linked to model.init_args.channels, which sets it: "
        "give the value there, once"
    )


@pytest.mark.slow
def test_training_on_digits_beats_an_untrained_generator(quiet_trainer):
    """A learning check on real data: 280 steps on scikit-learn's digits bring the Frechet distance, on a digit
    classifier's features, to a third of the untrained generator's or less (about a tenth when measured)."""
    torch.manual_seed(0)
    real, labels = load_labelled("digits", 32, 1)
    classifier = train_classifier(real, labels, epochs=3)
    # Narrow, small batches and a faster rate than the paper's 2e-4, so that a few steps show learning.
    model = DCGAN(image_size=32, channels=1, width=16, learning_rate=5e-4, grid_size=0)
    untrained = frechet_distance(classifier, real, model.eval().sample(len(real)))
    trainer = quiet_trainer(max_epochs=5)
    trainer.fit(model.train(), datamodule=ImageData("digits", image_size=32, channels=1, batch_size=32))
    trained = frechet_distance(classifier, real, model.eval().sample(len(real)))
    assert trained < untrained / 3, (trained, untrained)
