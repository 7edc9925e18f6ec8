"""A learned image prior: a small VAE of the model's training images, whose decoder renders draw.

Optimizing pixels finds whatever maximizes a unit, and for a small MNIST model that is a binary
pattern of blocks and stripes no pen ever drew. Optimizing the *latent* of a decoder trained on
the data ("synthesizing preferred inputs via deep generator networks", Nguyen et al. 2016)
keeps renders near the images the model was trained on: grey, anti-aliased pen strokes on
black for MNIST; colours and textures of the data for RGB sets.

The prior is a convolutional VAE (latent :data:`LATENT` dims) trained for a few seconds on the
checkpoint's *training* split only (never the validation images the renders are judged on),
reproducibly (fixed seed, one thread's worth of work). It depends on the data, not on the
model's weights, so every snapshot of a checkpoint shares one prior: it is cached in the
checkpoint's ``cache/`` folder under a key of the data's identity (name, split seed, image
shape) and the prior's version and settings; a Lens without a folder keeps it in memory.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ...data import Dataset, load_dataset
from ...errors import DataError
from ...lens import Lens
from ...progress import bar as progress_bar
from ..cache import cache_file, load_tensors, save_tensors

PRIOR_VERSION = "1"
LATENT = 32
"""Latent dimensions: enough for MNIST's stroke styles, few enough to train in seconds."""
MIN_SIDE = 8
"""Smallest image side the decoder can draw (two 2x upsamplings of a 2x2 grid)."""
MAX_SIDE = 256
"""Largest: beyond, a few seconds of training cannot learn a useful prior."""


@dataclass(frozen=True)
class PriorConfig:
    """Architecture and training settings (part of the cache key: change one, retrain)."""

    latent: int = LATENT
    epochs: int = 12
    batch_size: int = 64
    lr: float = 2e-3
    beta: float = 1.0  # weight of the KL term
    max_images: int = 20_000  # training images used at most (seconds, not minutes)
    seed: int = 0

    def key(self) -> str:
        return (
            f"z{self.latent}|e{self.epochs}|b{self.batch_size}|lr{self.lr}|beta{self.beta}"
            f"|n{self.max_images}|s{self.seed}"
        )


DEFAULT_CONFIG = PriorConfig()


def _stages(height: int, width: int) -> int:
    """Upsamplings by 2 from a base grid of side <= 8 (two for 28x28 and 32x32)."""
    return max(2, math.ceil(math.log2(max(height, width) / 7)))


class Decoder(nn.Module):
    """Latent -> image logits (N, C, H, W): a linear map onto a coarse grid, then 2x up-convs.

    The grid is rounded up to a multiple of ``2**stages`` and the image cut from its centre,
    so any size from :data:`MIN_SIDE` to :data:`MAX_SIDE` fits. No batch norm: an image
    depends on its own latent only, never on its batch mates.
    """

    def __init__(self, channels: int, height: int, width: int, latent: int = LATENT) -> None:
        super().__init__()
        self.shape = (channels, height, width)
        k = _stages(height, width)
        self.base = (math.ceil(height / 2**k), math.ceil(width / 2**k))
        widths = [min(128, 32 * 2 ** (k - 1 - i)) for i in range(k)]  # e.g. 64, 32
        self.width0 = widths[0]
        self.fc = nn.Linear(latent, widths[0] * self.base[0] * self.base[1])
        ups: list[nn.Module] = []
        for i in range(k):
            out = widths[i + 1] if i + 1 < k else channels
            ups.append(nn.ConvTranspose2d(widths[i], out, 4, stride=2, padding=1))
            if i + 1 < k:
                ups.append(nn.LeakyReLU(0.2))
        self.ups = nn.Sequential(*ups)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.fc(z), 0.2).view(-1, self.width0, *self.base)
        x = self.ups(x)
        _, h, w = self.shape
        top, left = (x.shape[2] - h) // 2, (x.shape[3] - w) // 2
        return x[:, :, top : top + h, left : left + w]


class Encoder(nn.Module):
    """Image -> (mean, log-variance) of the latent; used only while training."""

    def __init__(self, channels: int, height: int, width: int, latent: int = LATENT) -> None:
        super().__init__()
        k = _stages(height, width)
        widths = [min(128, 32 * 2**i) for i in range(k)]  # e.g. 32, 64
        convs: list[nn.Module] = []
        prev = channels
        for w in widths:
            convs += [nn.Conv2d(prev, w, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            prev = w
        self.convs = nn.Sequential(*convs)
        with torch.no_grad():
            flat = self.convs(torch.zeros(1, channels, height, width)).numel()
        self.fc = nn.Linear(flat, 2 * latent)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.fc(self.convs(x).flatten(1)).chunk(2, dim=1)
        return mu, logvar.clamp(-8.0, 8.0)


@dataclass
class ImagePrior:
    """A trained decoder (frozen, eval mode) and where it came from.

    ``decode(z)`` gives images as fractions of the value range in [0, 1] (a sigmoid), which the
    latent parameterization maps onto the model's range.
    """

    decoder: Decoder
    dataset: str
    key: str
    images: int  # training images it saw
    seconds: float  # training time (0 when loaded from the cache)
    loss: float  # final training loss per image (reconstruction + KL), in nats
    path: Path | None = None

    @property
    def latent(self) -> int:
        return int(self.decoder.fc.in_features)

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(z))

    def to(self, device: torch.device | str) -> ImagePrior:
        self.decoder.to(device)
        return self


_MEMORY: dict[str, ImagePrior] = {}
"""Priors of Lenses without a folder, by key (data identity: any model of that data shares it)."""


def image_prior(
    lens: Lens,
    data: str | Dataset | None = None,
    *,
    config: PriorConfig | None = None,
    cache: bool = True,
    progress: bool | None = None,
) -> ImagePrior:
    """The image prior of ``lens``'s data: loaded from the cache, or trained now and cached.

    ``data``: a dataset name, a loaded :class:`Dataset`, or None for the checkpoint's own
    training data (the split recorded in its config). Only the training split is used.
    """
    cfg = config or DEFAULT_CONFIG
    c, h, w = lens.spec.shape
    if min(h, w) < MIN_SIDE or max(h, w) > MAX_SIDE:
        raise DataError(
            f"the image prior draws images of {MIN_SIDE} to {MAX_SIDE} px a side, not {h}x{w}; "
            "use --preset clear for this model"
        )
    name, identity, loaded = _identity(lens, data)
    key = hashlib.sha256(
        f"{PRIOR_VERSION}|{identity}|{c}x{h}x{w}|{cfg.key()}".encode()
    ).hexdigest()[:16]
    path = cache_file(lens, "prior", name, key) if cache else None
    if path is None and cache and key in _MEMORY:
        return _MEMORY[key].to(lens.device)
    if path is not None and path.exists():
        try:
            return _load(path, (c, h, w), cfg, key).to(lens.device)
        except Exception:
            pass  # a damaged or foreign file: train again and replace it
    dataset = loaded if loaded is not None else _load_data(lens, name, identity)
    prior = train_prior(dataset.x_train, name=name, config=cfg, key=key, progress=progress)
    if path is not None:
        _save(path, prior)
    elif cache:
        _MEMORY[key] = prior
    return prior.to(lens.device)


def train_prior(
    x: torch.Tensor,
    *,
    name: str = "",
    config: PriorConfig | None = None,
    key: str = "",
    progress: bool | None = None,
) -> ImagePrior:
    """Train a VAE on images ``x`` (N, C, H, W) in [0, 1]; return its frozen decoder.

    Deterministic for a given ``config.seed``: its own generator for the initial weights,
    the shuffles and the latent noise, and one torch thread (float sums differ with the thread
    count, and every process, Ray worker or notebook must get the same prior for the same data).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(x, name=name, config=config, key=key, progress=progress)
    finally:
        torch.set_num_threads(threads)


def _train(
    x: torch.Tensor,
    *,
    name: str,
    config: PriorConfig | None,
    key: str,
    progress: bool | None,
) -> ImagePrior:
    cfg = config or DEFAULT_CONFIG
    if len(x) == 0:
        raise DataError("no training images to learn an image prior from")
    start = time.perf_counter()
    gen = torch.Generator().manual_seed(cfg.seed)
    if len(x) > cfg.max_images:
        x = x[torch.randperm(len(x), generator=gen)[: cfg.max_images]]
    x = x.detach().float().cpu().clamp(0, 1).contiguous()
    _, c, h, w = x.shape
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        encoder, decoder = Encoder(c, h, w, cfg.latent), Decoder(c, h, w, cfg.latent)
    params = list(encoder.parameters()) + list(decoder.parameters())
    opt = torch.optim.Adam(params, lr=cfg.lr)
    total_steps = cfg.epochs * math.ceil(len(x) / cfg.batch_size)
    warm = max(1, total_steps // 10)

    def factor(step: int) -> float:  # a short warm-up, then cosine down to zero
        return min(1.0, (step + 1) / warm) * 0.5 * (1 + math.cos(math.pi * step / total_steps))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    loss_avg = float("nan")
    with progress_bar(cfg.epochs, desc="image prior", unit="epoch", progress=progress) as bar:
        for _ in range(cfg.epochs):
            order = torch.randperm(len(x), generator=gen)
            total = 0.0
            for s in range(0, len(x), cfg.batch_size):
                batch = x[order[s : s + cfg.batch_size]]
                mu, logvar = encoder(batch)
                eps = torch.randn(mu.shape, generator=gen)
                z = mu + eps * (0.5 * logvar).exp()
                logits = decoder(z)
                rec = F.binary_cross_entropy_with_logits(logits, batch, reduction="sum")
                kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum()
                loss = (rec + cfg.beta * kl) / len(batch)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += float(loss.detach()) * len(batch)
            loss_avg = total / len(x)
            bar.update(1)
            bar.set_postfix_str(f"loss {loss_avg:.1f}")
    decoder.eval().requires_grad_(False)
    return ImagePrior(
        decoder=decoder,
        dataset=name,
        key=key,
        images=len(x),
        seconds=time.perf_counter() - start,
        loss=loss_avg,
    )


# --- data identity and the cache --------------------------------------------------------------


def _identity(lens: Lens, data: str | Dataset | None) -> tuple[str, str, Dataset | None]:
    """(name, identity, loaded dataset or None): what the prior's cache key is made of.

    A named dataset is identified by its name and split seed (the split is reproducible from
    them); a loaded one by a digest of its training images.
    """
    if isinstance(data, Dataset):
        digest = hashlib.sha256(data.x_train.detach().cpu().numpy().tobytes()).hexdigest()
        return data.name, f"{data.name}|train:{digest[:24]}", data
    recorded = (lens.source.get("config") or {}).get("data") or {}
    name = data or recorded.get("name")
    if not name:
        raise DataError(
            "the image prior learns from the model's training images, and this model does not "
            "record them; pass data='mnist' (or a path), or use preset='clear'"
        )
    seed = int(recorded.get("split_seed", 0)) if name == recorded.get("name") else 0
    return str(name), f"{name}|split{seed}", None


def _load_data(lens: Lens, name: str, identity: str) -> Dataset:
    from ...data.for_model import check_fits

    seed = int(identity.rsplit("|split", 1)[1])
    dataset = load_dataset(name, split_seed=seed, size=lens.spec.height)
    check_fits(dataset, lens)
    return dataset


def _save(path: Path, prior: ImagePrior) -> None:
    c, h, w = prior.decoder.shape
    meta = {
        "version": PRIOR_VERSION,
        "key": prior.key,
        "dataset": prior.dataset,
        "images": str(prior.images),
        "shape": f"{c}x{h}x{w}",
        "latent": str(prior.latent),
        "loss": f"{prior.loss:.6g}",
        "seconds": f"{prior.seconds:.3f}",
    }
    if save_tensors(path, prior.decoder.state_dict(), meta):  # else a read-only folder: no cache
        prior.path = path


def _load(path: Path, shape: tuple[int, int, int], cfg: PriorConfig, key: str) -> ImagePrior:
    tensors, meta = load_tensors(path)
    if meta.get("version") != PRIOR_VERSION or meta.get("key") != key:
        raise ValueError(f"{path} is another prior")
    decoder = Decoder(*shape, cfg.latent)
    decoder.load_state_dict(tensors)
    decoder.eval().requires_grad_(False)
    return ImagePrior(
        decoder=decoder,
        dataset=meta.get("dataset", ""),
        key=key,
        images=int(meta.get("images", 0)),
        seconds=0.0,
        loss=float(meta.get("loss", "nan")),
        path=path,
    )
