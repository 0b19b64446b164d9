"""CLIP: contrastive language-image pre-training (Radford et al. 2021, "Learning Transferable Visual Models From
Natural Language Supervision"), written with the parameter names of OpenAI's released checkpoints (``clip/model.py``);
``clip_adapter`` reads other layouts.

An image encoder (a Vision Transformer or the modified ResNet of section 2.4) and a text transformer each map their
input to a joint embedding space through a linear projection; training pulls each image towards its own caption and
away from the other captions of the batch with a symmetric cross-entropy over cosine similarities scaled by a learned
temperature (section 2.3, figure 3). Across processes the similarities span the global batch.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanMetric

from radford.errors import RadfordError
from radford.models.common import adamw, logging_step, warmup_cosine_schedule

# Named sizes (paper table 19 and 20; OpenAI's released models; LAION's largest, as open_clip's configs give them,
# GELU where OpenAI's are quick_gelu). A tuple of vision_layers makes a ResNet. The tiny ones train in minutes on a
# CPU on the shapes dataset.
SIZES: dict[str, dict[str, Any]] = {
    "RN50": dict(
        embed_dim=1024,
        image_size=224,
        vision_layers=(3, 4, 6, 3),
        vision_width=64,
        text_width=512,
        text_heads=8,
        text_layers=12,
    ),
    "RN101": dict(
        embed_dim=512,
        image_size=224,
        vision_layers=(3, 4, 23, 3),
        vision_width=64,
        text_width=512,
        text_heads=8,
        text_layers=12,
    ),
    "RN50x4": dict(
        embed_dim=640,
        image_size=288,
        vision_layers=(4, 6, 10, 6),
        vision_width=80,
        text_width=640,
        text_heads=10,
        text_layers=12,
    ),
    "ViT-B/32": dict(
        embed_dim=512,
        image_size=224,
        vision_layers=12,
        vision_width=768,
        patch_size=32,
        text_width=512,
        text_heads=8,
        text_layers=12,
    ),
    "ViT-B/16": dict(
        embed_dim=512,
        image_size=224,
        vision_layers=12,
        vision_width=768,
        patch_size=16,
        text_width=512,
        text_heads=8,
        text_layers=12,
    ),
    "ViT-L/14": dict(
        embed_dim=768,
        image_size=224,
        vision_layers=24,
        vision_width=1024,
        patch_size=14,
        text_width=768,
        text_heads=12,
        text_layers=12,
    ),
    "ViT-L/14@336px": dict(
        embed_dim=768,
        image_size=336,
        vision_layers=24,
        vision_width=1024,
        patch_size=14,
        text_width=768,
        text_heads=12,
        text_layers=12,
    ),
    "ViT-H/14": dict(
        embed_dim=1024,
        image_size=224,
        vision_layers=32,
        vision_width=1280,
        vision_heads=16,
        patch_size=14,
        text_width=1024,
        text_heads=16,
        text_layers=24,
    ),
    "ViT-g/14": dict(
        embed_dim=1024,
        image_size=224,
        vision_layers=40,
        vision_width=1408,
        vision_heads=16,
        patch_size=14,
        vision_mlp_width=6144,
        text_width=1024,
        text_heads=16,
        text_layers=24,
    ),
    "ViT-bigG/14": dict(
        embed_dim=1280,
        image_size=224,
        vision_layers=48,
        vision_width=1664,
        vision_heads=16,
        patch_size=14,
        vision_mlp_width=8192,
        text_width=1280,
        text_heads=20,
        text_layers=32,
    ),
    "ViT-tiny": dict(
        embed_dim=64,
        image_size=48,
        vision_layers=3,
        vision_width=64,
        vision_heads=4,
        patch_size=8,
        context_length=20,
        text_width=64,
        text_heads=4,
        text_layers=3,
    ),
    "RN-tiny": dict(
        embed_dim=64,
        image_size=64,
        vision_layers=(1, 1, 1, 1),
        vision_width=16,
        vision_heads=8,
        context_length=20,
        text_width=64,
        text_heads=4,
        text_layers=3,
    ),
}
# The arguments that shape the weights; a named size fills those not given.
ARCHITECTURE = (
    "embed_dim",
    "image_size",
    "vision_layers",
    "vision_width",
    "vision_heads",
    "patch_size",
    "vision_mlp_width",
    "context_length",
    "vocab_size",
    "text_width",
    "text_heads",
    "text_layers",
    "text_mlp_width",
)
# None: OpenAI's rules (64 dimensions a head, MLPs 4 x width), applied to the width in use.
DEFAULTS = dict(
    context_length=77, vocab_size=49408, vision_heads=None, patch_size=None, vision_mlp_width=None, text_mlp_width=None
)
MAX_LOGIT_SCALE = math.log(100)  # section 2.5: the temperature is clipped so that logits are scaled by at most 100


class QuickGELU(nn.Module):
    """x * sigmoid(1.702 x): the GELU approximation OpenAI's CLIP models were trained with."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(1.702 * x)


class Attention(nn.Module):
    """Multi-head self-attention with ``nn.MultiheadAttention``'s parameter names, as OpenAI's checkpoints store it,
    computed batch-first with ``scaled_dot_product_attention``."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        if width % heads:
            raise RadfordError(f"width {width} must be divisible by the number of heads {heads}")
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))  # query, key, value stacked
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)

    def forward(self, x: Tensor, causal: bool) -> Tensor:
        B, T, C = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias).view(B, T, 3, self.heads, C // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return self.out_proj(y.transpose(1, 2).reshape(B, T, C))


class ResidualAttentionBlock(nn.Module):
    """Pre-LayerNorm transformer block (GPT-2's), used by both encoders. OpenAI's MLPs are 4 x width wide; LAION's
    largest models are wider (ViT-bigG/14's vision MLP: 8192 for width 1664)."""

    def __init__(self, width: int, heads: int, quick_gelu: bool, mlp_width: int, eps: float) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width, eps=eps)
        self.attn = Attention(width, heads)
        self.ln_2 = nn.LayerNorm(width, eps=eps)
        self.mlp = nn.Sequential(
            OrderedDict(
                c_fc=nn.Linear(width, mlp_width),
                gelu=QuickGELU() if quick_gelu else nn.GELU(),
                c_proj=nn.Linear(mlp_width, width),
            )
        )

    def forward(self, x: Tensor, causal: bool) -> Tensor:
        x = x + self.attn(self.ln_1(x), causal)
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(
        self, width: int, layers: int, heads: int, quick_gelu: bool, causal: bool, mlp_width: int, eps: float
    ) -> None:
        super().__init__()
        self.width, self.layers, self.causal = width, layers, causal
        self.resblocks = nn.ModuleList(
            ResidualAttentionBlock(width, heads, quick_gelu, mlp_width, eps) for _ in range(layers)
        )

    def forward(self, x: Tensor) -> Tensor:
        for block in self.resblocks:
            x = block(x, self.causal)
        return x

    def init_(self) -> None:
        # OpenAI's initialisation: residual projections scaled down with depth (as GPT-2's).
        proj_std = self.width**-0.5 * (2 * self.layers) ** -0.5
        for block in self.resblocks:
            nn.init.normal_(block.attn.in_proj_weight, std=self.width**-0.5)
            nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            nn.init.normal_(block.mlp.c_fc.weight, std=(2 * self.width) ** -0.5)
            nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)


class VisionTransformer(nn.Module):
    """ViT (Dosovitskiy et al. 2020) with the extra LayerNorm before the transformer CLIP adds (section 2.4); the
    image's features are the class token's output."""

    def __init__(
        self,
        image_size: int,
        patch_size: int,
        width: int,
        layers: int,
        heads: int,
        output_dim: int,
        quick_gelu: bool,
        mlp_width: int,
        eps: float,
    ) -> None:
        super().__init__()
        if image_size % patch_size:
            raise RadfordError(f"image_size {image_size} must be a multiple of patch_size {patch_size}")
        scale = width**-0.5
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn((image_size // patch_size) ** 2 + 1, width))
        self.ln_pre = nn.LayerNorm(width, eps=eps)
        self.transformer = Transformer(width, layers, heads, quick_gelu, causal=False, mlp_width=mlp_width, eps=eps)
        self.ln_post = nn.LayerNorm(width, eps=eps)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    def init_(self) -> None:
        self.transformer.init_()

    def features(self, x: Tensor) -> Tensor:
        x = self.conv1(x).flatten(2).transpose(1, 2)  # (B, patches, width)
        x = torch.cat([self.class_embedding.expand(x.shape[0], 1, -1).to(x.dtype), x], dim=1)
        x = self.transformer(self.ln_pre(x + self.positional_embedding.to(x.dtype)))
        return self.ln_post(x[:, 0])

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x) @ self.proj


class Bottleneck(nn.Module):
    """ResNet-D bottleneck with anti-aliased downsampling (section 2.4): a stride becomes an average pool before
    the last convolution, and on the shortcut."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.avgpool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.downsample = None
        if stride > 1 or inplanes != planes * self.expansion:
            self.downsample = nn.Sequential(
                OrderedDict(
                    [
                        ("-1", nn.AvgPool2d(stride)),
                        ("0", nn.Conv2d(inplanes, planes * self.expansion, 1, bias=False)),
                        ("1", nn.BatchNorm2d(planes * self.expansion)),
                    ]
                )
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.avgpool(F.relu(self.bn2(self.conv2(out))))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class AttentionPool2d(nn.Module):
    """Section 2.4: global average pooling replaced by one layer of attention whose query is the mean feature."""

    def __init__(self, spatial: int, width: int, heads: int, output_dim: int) -> None:
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.randn(spatial**2 + 1, width) / width**0.5)
        self.k_proj, self.q_proj, self.v_proj = (nn.Linear(width, width) for _ in range(3))
        self.c_proj = nn.Linear(width, output_dim)
        self.heads = heads

    def forward(self, x: Tensor) -> Tensor:
        x = x.flatten(2).transpose(1, 2)  # (B, H*W, C)
        x = torch.cat([x.mean(dim=1, keepdim=True), x], dim=1) + self.positional_embedding.to(x.dtype)
        B, T, C = x.shape
        q = self.q_proj(x[:, :1]).view(B, 1, self.heads, -1).transpose(1, 2)
        k, v = (proj(x).view(B, T, self.heads, -1).transpose(1, 2) for proj in (self.k_proj, self.v_proj))
        return self.c_proj(F.scaled_dot_product_attention(q, k, v).reshape(B, C))


class ModifiedResNet(nn.Module):
    """Section 2.4's ResNet: a stem of three convolutions with an average pool, anti-aliased bottlenecks and
    attention pooling. ``forward`` ends in the joint space (the pool's output projection)."""

    def __init__(self, layers: Sequence[int], output_dim: int, heads: int, image_size: int, width: int) -> None:
        super().__init__()
        if image_size % 32:
            raise RadfordError(f"a ResNet's image_size must be a multiple of 32, got {image_size}")
        self.conv1 = nn.Conv2d(3, width // 2, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width // 2)
        self.conv2 = nn.Conv2d(width // 2, width // 2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width // 2)
        self.conv3 = nn.Conv2d(width // 2, width, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.avgpool = nn.AvgPool2d(2)
        inplanes = width
        stages = []
        for i, blocks in enumerate(layers):
            planes = width * 2**i
            stage = [Bottleneck(inplanes, planes, stride=1 if i == 0 else 2)]
            inplanes = planes * Bottleneck.expansion
            stage += [Bottleneck(inplanes, planes) for _ in range(1, blocks)]
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.attnpool = AttentionPool2d(image_size // 32, width * 32, heads, output_dim)

    def init_(self) -> None:
        std = self.attnpool.c_proj.in_features**-0.5
        for proj in (self.attnpool.q_proj, self.attnpool.k_proj, self.attnpool.v_proj, self.attnpool.c_proj):
            nn.init.normal_(proj.weight, std=std)
        # Each residual branch starts as zero, so that every block starts as the identity (Goyal et al. 2017).
        for name, param in self.named_parameters():
            if name.endswith("bn3.weight") and name.startswith("layer"):
                nn.init.zeros_(param)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = self.avgpool(F.relu(self.bn3(self.conv3(x))))
        return self.attnpool(self.layer4(self.layer3(self.layer2(self.layer1(x)))))

    features = forward  # the attention pool's output is what linear probes read (paper appendix A.3)


def contrastive_loss(
    image_features: Tensor, text_features: Tensor, logit_scale: Tensor, gather: bool = True, local_loss: bool = False
) -> Tensor:
    """Symmetric cross-entropy of the scaled cosine similarities (figure 3) for L2-normalised features (B, D).

    With several processes and ``gather``, the batch is the global batch: every process gathers all features. Each
    process then scores every pair (N x N logits), or with ``local_loss`` only its own rows against all the others
    (B x N, open_clip's memory-saving form); either way the mean over processes of the loss, and DDP's mean of the
    gradients, equal one process's on the global batch.
    """
    world = dist.get_world_size() if gather and dist.is_available() and dist.is_initialized() else 1
    labels = torch.arange(image_features.shape[0], device=image_features.device)
    if world > 1:
        # torch's all_gather with gradients: backward hands each process the gradient of its own rows summed over
        # every process's loss, so that DDP's mean of the gradients is the gradient of the mean of the losses.
        all_images = torch.cat(dist_nn.all_gather(image_features))
        all_texts = torch.cat(dist_nn.all_gather(text_features))
        if local_loss:
            labels = labels + dist.get_rank() * image_features.shape[0]
            per_image = logit_scale * image_features @ all_texts.T
            per_text = logit_scale * text_features @ all_images.T
            return (F.cross_entropy(per_image, labels) + F.cross_entropy(per_text, labels)) / 2
        image_features, text_features = all_images, all_texts
        labels = torch.arange(image_features.shape[0], device=image_features.device)
    logits = logit_scale * image_features @ text_features.T
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


class CLIP(L.LightningModule):
    """CLIP. ``size`` names an architecture in SIZES; architecture arguments given beside it replace its values.
    A batch is ``(pixels (B, 3, image_size, image_size), token ids (B, T <= context_length))``; the text's features
    are read at its ``<|endoftext|>``, the largest id of the row (as OpenAI's code finds it).

    ``vision_mlp_width`` and ``text_mlp_width`` (default 4 x the width, OpenAI's), ``layer_norm_eps`` and
    ``quick_gelu`` (OpenAI's weights) are there for models trained by others: LAION's ViT-g/14 and ViT-bigG/14 have
    wider MLPs, and ``radford.load`` reads any Hugging Face ``CLIPModel`` or open_clip folder of these shapes.

    Training follows section 2.5: AdamW with decoupled weight decay on all weights but gains and biases, a cosine
    schedule after a linear warmup, the temperature initialised to 0.07 and clipped at 100.
    """

    feature_input = "images"  # radford.eval.probe.ImageFeatures
    feature_description = "image features before the projection: ViT class token after ln_post, ResNet attention pool"

    def __init__(
        self,
        size: str = "ViT-B/32",
        embed_dim: int | None = None,
        image_size: int | None = None,
        vision_layers: int | tuple[int, int, int, int] | None = None,
        vision_width: int | None = None,
        vision_heads: int | None = None,
        patch_size: int | None = None,
        context_length: int | None = None,
        vocab_size: int | None = None,
        text_width: int | None = None,
        text_heads: int | None = None,
        text_layers: int | None = None,
        vision_mlp_width: int | None = None,
        text_mlp_width: int | None = None,
        quick_gelu: bool = False,
        layer_norm_eps: float = 1e-5,
        local_loss: bool = False,
        learning_rate: float = 5e-4,
        min_learning_rate: float = 0.0,
        weight_decay: float = 0.2,
        betas: tuple[float, float] = (0.9, 0.98),
        eps: float = 1e-6,
        warmup_steps: int = 2000,
        decay_steps: int | None = None,
    ) -> None:
        super().__init__()
        if size not in SIZES:
            raise RadfordError(f"unknown CLIP size {size!r}; choose from: {', '.join(SIZES)}")
        given = dict(
            embed_dim=embed_dim,
            image_size=image_size,
            vision_layers=vision_layers,
            vision_width=vision_width,
            vision_heads=vision_heads,
            patch_size=patch_size,
            vision_mlp_width=vision_mlp_width,
            context_length=context_length,
            vocab_size=vocab_size,
            text_width=text_width,
            text_heads=text_heads,
            text_layers=text_layers,
            text_mlp_width=text_mlp_width,
        )
        arch = {**DEFAULTS, **SIZES[size], **{k: v for k, v in given.items() if v is not None}}
        resnet = isinstance(arch["vision_layers"], (tuple, list))
        if resnet:
            arch["vision_layers"] = tuple(arch["vision_layers"])
        if arch["vision_heads"] is None:  # OpenAI's: 64 dimensions a head in ViTs, in the ResNet's pool
            arch["vision_heads"] = arch["vision_width"] * (32 if resnet else 1) // 64
        if not resnet and arch["patch_size"] is None:
            raise RadfordError(f"a Vision Transformer needs patch_size (size {size!r} gives none)")
        if resnet:  # the ResNet has no transformer MLP
            arch["vision_mlp_width"] = None
        elif arch["vision_mlp_width"] is None:
            arch["vision_mlp_width"] = 4 * arch["vision_width"]
        if arch["text_mlp_width"] is None:
            arch["text_mlp_width"] = 4 * arch["text_width"]
        self.save_hyperparameters()
        self.save_hyperparameters(arch)  # the architecture as built, so that a checkpoint rebuilds it

        a = arch
        if resnet:
            self.visual: nn.Module = ModifiedResNet(
                a["vision_layers"], a["embed_dim"], a["vision_heads"], a["image_size"], a["vision_width"]
            )
        else:
            self.visual = VisionTransformer(
                a["image_size"],
                a["patch_size"],
                a["vision_width"],
                a["vision_layers"],
                a["vision_heads"],
                a["embed_dim"],
                quick_gelu,
                a["vision_mlp_width"],
                layer_norm_eps,
            )
        self.transformer = Transformer(
            a["text_width"],
            a["text_layers"],
            a["text_heads"],
            quick_gelu,
            causal=True,
            mlp_width=a["text_mlp_width"],
            eps=layer_norm_eps,
        )
        self.token_embedding = nn.Embedding(a["vocab_size"], a["text_width"])
        self.positional_embedding = nn.Parameter(torch.empty(a["context_length"], a["text_width"]))
        self.ln_final = nn.LayerNorm(a["text_width"], eps=layer_norm_eps)
        self.text_projection = nn.Parameter(torch.empty(a["text_width"], a["embed_dim"]))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))  # section 2.5: temperature 0.07
        self.val_metrics = nn.ModuleDict({name: MeanMetric() for name in ("loss", "image_to_text", "text_to_image")})
        self._init_parameters()

    def _init_parameters(self) -> None:
        # OpenAI's initialisation (clip/model.py).
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        self.visual.init_()
        self.transformer.init_()
        nn.init.normal_(self.text_projection, std=self.transformer.width**-0.5)

    # -- encoders ------------------------------------------------------------------------------------------------

    def features(self, pixels: Tensor) -> Tensor:
        """Image features before the projection to the joint space (paper appendix A.3's linear-probe features):
        a ViT's class token after ln_post, the ResNet's attention pool."""
        return self.visual.features(self._checked_pixels(pixels))

    def encode_image(self, pixels: Tensor) -> Tensor:
        """Unnormalised image embeddings (B, embed_dim) for normalised pixels (B, 3, image_size, image_size)."""
        return self.visual(self._checked_pixels(pixels))

    def encode_text(self, token_ids: Tensor) -> Tensor:
        """Unnormalised text embeddings (B, embed_dim) for token ids (B, T), read at each row's largest id."""
        if token_ids.dim() != 2 or not 0 < token_ids.shape[1] <= self.hparams.context_length:
            raise RadfordError(
                f"token ids must be (batch, length <= {self.hparams.context_length}), got shape "
                f"{tuple(token_ids.shape)}"
            )
        x = self.token_embedding(token_ids) + self.positional_embedding[: token_ids.shape[1]]
        x = self.ln_final(self.transformer(x))
        return x[torch.arange(x.shape[0], device=x.device), token_ids.argmax(dim=-1)] @ self.text_projection

    def _checked_pixels(self, pixels: Tensor) -> Tensor:
        side = self.hparams.image_size
        if pixels.dim() != 4 or tuple(pixels.shape[1:]) != (3, side, side):
            raise RadfordError(f"pixels must be (batch, 3, {side}, {side}), got shape {tuple(pixels.shape)}")
        return pixels

    def forward(self, pixels: Tensor, token_ids: Tensor) -> tuple[Tensor, Tensor]:
        """``(logits_per_image, logits_per_text)``: scaled cosine similarities of every image with every text."""
        image = F.normalize(self.encode_image(pixels), dim=-1)
        text = F.normalize(self.encode_text(token_ids), dim=-1)
        logits_per_image = self.logit_scale.exp() * image @ text.T
        return logits_per_image, logits_per_image.T

    # -- training ------------------------------------------------------------------------------------------------

    def loss(self, batch: tuple[Tensor, Tensor], gather: bool = True) -> tuple[Tensor, Tensor, Tensor]:
        """The contrastive loss of a batch (over the global batch if ``gather``), and the normalised features."""
        pixels, token_ids = batch
        image = F.normalize(self.encode_image(pixels), dim=-1)
        text = F.normalize(self.encode_text(token_ids), dim=-1)
        loss = contrastive_loss(image, text, self.logit_scale.exp(), gather, self.hparams.local_loss)
        return loss, image, text

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss, _, _ = self.loss(batch)
        if logging_step(self._trainer):
            # Each process's local loss is its rows' share; their mean is the global batch's loss.
            self.log("train_loss", loss, prog_bar=True, sync_dist=self.hparams.local_loss)
            self.log("logit_scale", self.logit_scale.exp())
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        with torch.no_grad():
            self.logit_scale.clamp_(0, MAX_LOGIT_SCALE)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        # Each process scores its own batch: a validation batch's size need not match across processes.
        loss, image, text = self.loss(batch, gather=False)
        similarity = image @ text.T
        targets = torch.arange(len(similarity), device=similarity.device)
        metrics = {
            "loss": loss,
            "image_to_text": (similarity.argmax(1) == targets).float().mean(),
            "text_to_image": (similarity.argmax(0) == targets).float().mean(),
        }
        for name, value in metrics.items():
            self.val_metrics[name].update(value, weight=len(targets))
            self.log(
                f"val_{name}" if name == "loss" else f"val_{name}_top1", self.val_metrics[name], prog_bar=name == "loss"
            )

    def configure_optimizers(self):
        hp = self.hparams
        # Section 2.5 / OpenAI's training: eps 1e-6, where Adam's default is 1e-8.
        optimizer = adamw(self, hp.learning_rate, hp.betas, hp.weight_decay, eps=hp.eps)
        return warmup_cosine_schedule(optimizer, self)

    # -- zero-shot -----------------------------------------------------------------------------------------------

    @torch.no_grad()
    def class_embeddings(self, token_ids: Tensor) -> Tensor:
        """Zero-shot classifier weights (classes, embed_dim) from the token ids (classes, templates, T) of each
        class's prompts: the mean of the normalised prompt embeddings, normalised again (section 3.1.4)."""
        classes, templates, length = token_ids.shape
        embeddings = F.normalize(self.encode_text(token_ids.reshape(-1, length)), dim=-1)
        return F.normalize(embeddings.view(classes, templates, -1).mean(1), dim=-1)


__all__ = ["CLIP", "SIZES", "contrastive_loss"]
