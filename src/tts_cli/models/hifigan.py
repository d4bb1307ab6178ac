"""HiFi-GAN (Kong et al. 2020): generator V1/V2/V3, multi-period and multi-scale discriminators, losses.

Generator: mel [B, n_mels, T] -> conv_pre -> for each upsampling stage (LeakyReLU 0.1 ->
transposed conv -> mean of the multi-receptive-field resblocks) -> LeakyReLU (0.01, as the
published models) -> conv_post -> tanh -> wav [B, T * prod(upsample_rates)].

Parameter names equal jik876/hifi-gan's generator (`conv_pre`, `ups.N`, flat `resblocks.N` with
N = stage * n_kernels + kernel index, `convs1/convs2` for resblock type 1, `convs` for type 2,
`conv_post`), with weight norm stored as `weight_g` / `weight_v`, so a jik876 `g_XXXXXXXX` file's
`generator` dict loads as is. NVIDIA DeepLearningExamples nests the resblocks as
`resblocks.<stage>.<kernel index>` and may order the kernels [11, 7, 3]; `tts_cli.inference.vocoders`
maps that layout (see `nested_to_flat_resblocks`).

Weight norm is our own small implementation (torch's `weight_norm` is deprecated and its
replacement renames the parameters): `WNConv1d` / `WNConvTranspose1d` hold `weight_g` (norm per
output slice, dim 0) and `weight_v` while training; `remove_weight_norm()` folds them into a
plain `weight` for inference. `as_conv2d()` turns every conv into a (1, k) conv2d so inference
can run channels-last (NHWC), which oneDNN executes ~1.4-2.4x faster on CPU.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from tts_cli.config import Settings, check_known_keys
from tts_cli.errors import ConfigError

LRELU_SLOPE = 0.1


# ----------------------------------------------------------------------------- config

@dataclass
class HiFiGANConfig(Settings):
    """The generator's sizes (jik876's V1/V2/V3 presets). `from_dict` accepts a jik876 config.json
    as it is: its training keys are ignored; any other unknown key is an error (a typo)."""

    SECTION: ClassVar[str] = "model"

    n_mels: int = 80
    upsample_rates: list = field(default_factory=lambda: [8, 8, 2, 2])
    upsample_kernel_sizes: list = field(default_factory=lambda: [16, 16, 4, 4])
    upsample_initial_channel: int = 512
    resblock: str = "1"  # "1": two convs per dilation (V1/V2); "2": one conv per dilation (V3)
    resblock_kernel_sizes: list = field(default_factory=lambda: [3, 7, 11])
    resblock_dilation_sizes: list = field(default_factory=lambda: [[1, 3, 5], [1, 3, 5], [1, 3, 5]])

    def __post_init__(self):
        self.resblock = str(self.resblock)
        if self.resblock not in ("1", "2"):
            raise ConfigError(f"resblock must be '1' or '2', got {self.resblock!r}")
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise ConfigError("upsample_rates and upsample_kernel_sizes differ in length")
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            raise ConfigError("resblock_kernel_sizes and resblock_dilation_sizes differ in length")
        self.upsample_rates = [int(x) for x in self.upsample_rates]
        self.upsample_kernel_sizes = [int(x) for x in self.upsample_kernel_sizes]
        self.resblock_kernel_sizes = [int(x) for x in self.resblock_kernel_sizes]
        self.resblock_dilation_sizes = [[int(d) for d in ds] for ds in self.resblock_dilation_sizes]

    @property
    def hop_length(self) -> int:
        """Samples per mel frame = product of the upsampling rates."""
        n = 1
        for u in self.upsample_rates:
            n *= u
        return n

    @classmethod
    def from_dict(cls, d: dict | None = None) -> "HiFiGANConfig":
        """From a dict with an optional `preset` (v1 | v2 | v3) plus fields; jik876 JSON keys
        (`num_mels`) are accepted and its training settings ignored; other unknown keys are refused."""
        d = dict(d or {})
        preset = str(d.pop("preset", "v1")).lower()
        if preset not in PRESETS:
            raise ConfigError(f"unknown HiFi-GAN preset {preset!r} (known: {', '.join(PRESETS)})")
        if "num_mels" in d:
            d.setdefault("n_mels", d["num_mels"])
        d = {k: v for k, v in d.items() if k not in JIK876_TRAINING_KEYS}
        check_known_keys("model", d, cls)
        return replace(PRESETS[preset], **d)


# jik876/hifi-gan config.json keys that are not the generator's sizes (what a copied config brings)
JIK876_TRAINING_KEYS = frozenset({
    "num_mels", "num_gpus", "batch_size", "learning_rate", "adam_b1", "adam_b2", "lr_decay", "seed", "segment_size",
    "num_freq", "n_fft", "hop_size", "win_size", "sampling_rate", "fmin", "fmax", "fmax_for_loss", "num_workers",
    "dist_config",
})


PRESETS: dict[str, HiFiGANConfig] = {
    # 13.9 M parameters: best quality, ~13x the compute of V3
    "v1": HiFiGANConfig(),
    # 0.93 M: V1's layout with 128 initial channels
    "v2": HiFiGANConfig(upsample_initial_channel=128),
    # 1.46 M: three stages, resblock type 2; the fast CPU vocoder
    "v3": HiFiGANConfig(upsample_rates=[8, 8, 4], upsample_kernel_sizes=[16, 16, 8], upsample_initial_channel=256,
                        resblock="2", resblock_kernel_sizes=[3, 5, 7],
                        resblock_dilation_sizes=[[1, 2], [2, 6], [3, 12]]),
}


def get_padding(kernel_size: int, dilation: int = 1) -> int:
    return (kernel_size * dilation - dilation) // 2


def receptive_field_frames(config: HiFiGANConfig) -> int:
    """Mel frames on each side that can influence an output sample (rounded up).

    Vocoding a mel in pieces with at least this many frames of context on each side gives the
    same samples as vocoding it whole (up to float rounding): the generator has no recurrence,
    only this finite reach."""
    reach = (7 - 1) / 2  # conv_pre, in frames
    rate = 1
    for u, k in zip(config.upsample_rates, config.upsample_kernel_sizes):
        reach += (k / u / 2 + 1) / rate  # transposed conv: ~k/(2u) input samples, + 1 for rounding
        rate *= u
        per_kernel = []
        for ks, ds in zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes):
            half = sum((ks - 1) * d // 2 for d in ds)
            if config.resblock == "1":
                half += len(ds) * ((ks - 1) // 2)  # the undilated second conv per dilation
            per_kernel.append(half)
        reach += max(per_kernel) / rate
    reach += 3 / rate  # conv_post
    return int(-(-reach // 1))


# ----------------------------------------------------------------------------- weight-normed convs

class _WeightNormMixin:
    """weight = g * v / ||v|| (norm over all dims but 0), stored as weight_g / weight_v."""

    def apply_weight_norm(self) -> None:
        if hasattr(self, "weight_v"):
            return
        w = self.weight.detach()
        del self.weight  # the Parameter; `weight` becomes a property-like computed tensor
        self.weight_v = nn.Parameter(w.clone())
        self.weight_g = nn.Parameter(torch.norm_except_dim(w, 2, 0))

    def remove_weight_norm(self) -> None:
        if not hasattr(self, "weight_v"):
            return
        w = self._weight().detach()
        del self.weight_v, self.weight_g
        self.weight = nn.Parameter(w)

    def _weight(self) -> torch.Tensor:
        if hasattr(self, "weight_v"):
            return torch._weight_norm(self.weight_v, self.weight_g, 0)
        return self.weight


class WNConv1d(_WeightNormMixin, nn.Conv1d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self._weight(), self.bias)


class WNConvTranspose1d(_WeightNormMixin, nn.ConvTranspose1d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose1d(x, self._weight(), self.bias, self.stride, self.padding, self.output_padding,
                                  self.groups, self.dilation)


def _conv(cin: int, cout: int, k: int, dilation: int = 1) -> WNConv1d:
    return WNConv1d(cin, cout, k, 1, dilation=dilation, padding=get_padding(k, dilation))


# ----------------------------------------------------------------------------- generator

class ResBlock1(nn.Module):
    """Per dilation d: x + conv_k(lrelu(conv_k,d(lrelu(x))))."""

    def __init__(self, channels: int, kernel_size: int, dilations: list[int]):
        super().__init__()
        self.convs1 = nn.ModuleList([_conv(channels, channels, kernel_size, d) for d in dilations])
        self.convs2 = nn.ModuleList([_conv(channels, channels, kernel_size, 1) for _ in dilations])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            xt = c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
            x = x + xt
        return x

    def inference(self, x: torch.Tensor) -> torch.Tensor:
        """forward() without fresh tensors for the residual sums (x itself is left untouched)."""
        for c1, c2 in zip(self.convs1, self.convs2):
            xt = c1(F.leaky_relu(x, LRELU_SLOPE))
            x = c2(F.leaky_relu_(xt, LRELU_SLOPE)).add_(x)
        return x


class ResBlock2(nn.Module):
    """Per dilation d: x + conv_k,d(lrelu(x))."""

    def __init__(self, channels: int, kernel_size: int, dilations: list[int]):
        super().__init__()
        self.convs = nn.ModuleList([_conv(channels, channels, kernel_size, d) for d in dilations])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c in self.convs:
            x = x + c(F.leaky_relu(x, LRELU_SLOPE))
        return x

    def inference(self, x: torch.Tensor) -> torch.Tensor:
        """forward() without fresh tensors for the residual sums (x itself is left untouched)."""
        for c in self.convs:
            x = c(F.leaky_relu(x, LRELU_SLOPE)).add_(x)
        return x


class Generator(nn.Module):
    def __init__(self, config: HiFiGANConfig | None = None):
        super().__init__()
        cfg = config or HiFiGANConfig()
        self.config = cfg
        self.num_kernels = len(cfg.resblock_kernel_sizes)
        ch = cfg.upsample_initial_channel
        self.conv_pre = WNConv1d(cfg.n_mels, ch, 7, 1, padding=3)
        self.ups = nn.ModuleList()
        for i, (u, k) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes)):
            self.ups.append(WNConvTranspose1d(ch // 2 ** i, ch // 2 ** (i + 1), k, u, padding=(k - u) // 2))
        block = ResBlock1 if cfg.resblock == "1" else ResBlock2
        self.resblocks = nn.ModuleList()
        for i in range(len(self.ups)):
            c = ch // 2 ** (i + 1)
            for k, d in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes):
                self.resblocks.append(block(c, k, d))
        self.conv_post = WNConv1d(ch // 2 ** len(self.ups), 1, 7, 1, padding=3)
        for m in self.modules():  # the published init: N(0, 0.01) for the upsampling and resblock convs
            if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d)) and m is not self.conv_pre and m is not self.conv_post:
                nn.init.normal_(m.weight, 0.0, 0.01)
        for m in self.modules():
            if isinstance(m, _WeightNormMixin):
                m.apply_weight_norm()
        self.conv2d = False  # set by as_conv2d()

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """mel [B, n_mels, T] -> wav [B, 1, T * hop_length] in [-1, 1]."""
        x = mel
        if self.conv2d:  # [B, C, 1, T], NHWC in memory
            x = x.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        x = self.conv_pre(x)
        nk = self.num_kernels
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            xs = self.resblocks[i * nk](x)
            for j in range(1, nk):
                xs = xs + self.resblocks[i * nk + j](x)
            x = xs / nk
        x = torch.tanh(self.conv_post(F.leaky_relu(x)))  # 0.01 slope here, as the published models
        if self.conv2d:
            x = x.squeeze(2).contiguous()
        return x

    @torch.inference_mode()
    def inference(self, mel: torch.Tensor) -> torch.Tensor:
        """`forward` for inference: the same arithmetic (up to float rounding), with the residual
        sums, the kernel mean and the last activations done in place.

        HiFi-GAN's late stages are memory-bound on CPU (32-64 channels at 64-256x the frame
        rate): every elementwise op that allocates a fresh activation costs a pass over memory
        and, with glibc's malloc, page faults on the new block. Reusing the conv outputs instead
        saves a few % (the larger win is malloc's reuse of those blocks, see
        `tts_cli.inference.cpu.tune_malloc_for_inference`)."""
        x = mel
        if self.conv2d:
            x = x.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        x = self.conv_pre(x)
        nk = self.num_kernels
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            xs = None
            for j in range(nk):
                # each resblock reads the stage input x: never write into it
                y = self.resblocks[i * nk + j].inference(x)
                xs = y if xs is None else xs.add_(y)
            x = xs.mul_(1.0 / nk) if nk > 1 else xs
        x = torch.tanh_(self.conv_post(F.leaky_relu_(x)))  # x is ours here: in place is safe
        if self.conv2d:
            x = x.squeeze(2).contiguous()
        return x

    def remove_weight_norm(self) -> "Generator":
        """Fold weight_g / weight_v into `weight` (inference form; state dict keys become `*.weight`)."""
        for m in self.modules():
            if isinstance(m, _WeightNormMixin):
                m.remove_weight_norm()
        return self

    def apply_weight_norm(self) -> "Generator":
        """Back to the training form (weight_g / weight_v), e.g. to fine-tune a plain-weight export."""
        for m in self.modules():
            if isinstance(m, _WeightNormMixin):
                m.apply_weight_norm()
        return self

    def as_conv2d(self) -> "Generator":
        """An inference copy whose convs are (1, k) conv2d: run it channels-last on CPU.

        Needs the weight norm removed; same outputs as this model up to float rounding."""
        if any(hasattr(m, "weight_v") for m in self.modules()):
            raise ValueError("remove_weight_norm() before as_conv2d()")
        new = copy.deepcopy(self)
        _convert_to_2d(new)
        new.conv2d = True
        return new.to(memory_format=torch.channels_last)


def _convert_to_2d(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.ConvTranspose1d):
            new = nn.ConvTranspose2d(child.in_channels, child.out_channels, (1, child.kernel_size[0]),
                                     (1, child.stride[0]), (0, child.padding[0]), groups=child.groups,
                                     dilation=(1, child.dilation[0]), bias=child.bias is not None)
        elif isinstance(child, nn.Conv1d):
            new = nn.Conv2d(child.in_channels, child.out_channels, (1, child.kernel_size[0]), (1, child.stride[0]),
                            (0, child.padding[0]), dilation=(1, child.dilation[0]), groups=child.groups,
                            bias=child.bias is not None)
        else:
            _convert_to_2d(child)
            continue
        with torch.no_grad():
            new.weight.copy_(child.weight.unsqueeze(2))
            if child.bias is not None:
                new.bias.copy_(child.bias)
        setattr(module, name, new)


# ----------------------------------------------------------------------------- discriminators

def _width(channels: int, width: float) -> int:
    """Channels scaled by `width` (1 = the paper's; smaller only for tests and quick experiments),
    kept a multiple of 16 so the grouped convs stay valid."""
    if width == 1.0:
        return channels
    return max(16, int(round(channels * width / 16)) * 16)


def _norm(module: nn.Module, spectral: bool = False) -> nn.Module:
    from torch.nn.utils import parametrizations

    return parametrizations.spectral_norm(module) if spectral else parametrizations.weight_norm(module)


class DiscriminatorP(nn.Module):
    """Looks at the waveform folded into [T / period, period] columns (2D convs along time)."""

    def __init__(self, period: int, kernel_size: int = 5, stride: int = 3, width: float = 1.0):
        super().__init__()
        self.period = period
        pad = get_padding(kernel_size, 1)
        chans = [1] + [_width(c, width) for c in (32, 128, 512, 1024)]
        top = chans[-1]
        self.convs = nn.ModuleList([
            _norm(nn.Conv2d(chans[i], chans[i + 1], (kernel_size, 1), (stride, 1), padding=(pad, 0)))
            for i in range(4)
        ] + [_norm(nn.Conv2d(top, top, (kernel_size, 1), 1, padding=(2, 0)))])
        self.conv_post = _norm(nn.Conv2d(top, 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, x: torch.Tensor):
        b, c, t = x.shape
        if t % self.period:
            n_pad = self.period - t % self.period
            x = F.pad(x, (0, n_pad), "reflect" if t > n_pad else "constant")
            t += n_pad
        return _score(self.convs, self.conv_post, x.view(b, c, t // self.period, self.period))


class MultiPeriodDiscriminator(nn.Module):
    def __init__(self, periods: tuple[int, ...] = (2, 3, 5, 7, 11), width: float = 1.0):
        super().__init__()
        self.discriminators = nn.ModuleList([DiscriminatorP(p, width=width) for p in periods])

    def forward(self, y: torch.Tensor, y_hat: torch.Tensor):
        """(real scores, fake scores, real feature maps, fake feature maps), one entry per period."""
        return _run_all(self.discriminators, [(y, y_hat)] * len(self.discriminators))


class DiscriminatorS(nn.Module):
    """Strided grouped 1D convs over the (pooled) waveform."""

    def __init__(self, spectral: bool = False, width: float = 1.0):
        super().__init__()
        spec = [(1, 128, 15, 1, 1, 7), (128, 128, 41, 2, 4, 20), (128, 256, 41, 2, 16, 20),
                (256, 512, 41, 4, 16, 20), (512, 1024, 41, 4, 16, 20), (1024, 1024, 41, 1, 16, 20),
                (1024, 1024, 5, 1, 1, 2)]
        w = lambda c: c if c == 1 else _width(c, width)  # noqa: E731
        self.convs = nn.ModuleList([_norm(nn.Conv1d(w(i), w(o), k, s, groups=g, padding=p), spectral)
                                    for i, o, k, s, g, p in spec])
        self.conv_post = _norm(nn.Conv1d(w(1024), 1, 3, 1, padding=1), spectral)

    def forward(self, x: torch.Tensor):
        return _score(self.convs, self.conv_post, x)


class MultiScaleDiscriminator(nn.Module):
    """Three scales: raw, x1/2, x1/4 (average pooling); the first uses spectral norm."""

    def __init__(self, width: float = 1.0):
        super().__init__()
        self.discriminators = nn.ModuleList([DiscriminatorS(spectral=True, width=width), DiscriminatorS(width=width),
                                             DiscriminatorS(width=width)])
        self.meanpools = nn.ModuleList([nn.AvgPool1d(4, 2, padding=2), nn.AvgPool1d(4, 2, padding=2)])

    def forward(self, y: torch.Tensor, y_hat: torch.Tensor):
        scales = [(y, y_hat)]
        for pool in self.meanpools:  # each scale pools the previous one
            scales.append((pool(scales[-1][0]), pool(scales[-1][1])))
        return _run_all(self.discriminators, scales)


def _score(convs, conv_post, x: torch.Tensor):
    """A discriminator's conv stack: (flattened scores, the output of every layer for feature matching)."""
    fmap = []
    for conv in convs:
        x = F.leaky_relu(conv(x), LRELU_SLOPE)
        fmap.append(x)
    x = conv_post(x)
    fmap.append(x)
    return torch.flatten(x, 1, -1), fmap


def _run_all(discriminators, inputs):
    """(real scores, fake scores, real feature maps, fake feature maps): discriminator i judges inputs[i]."""
    rs, gs, fr, fg = [], [], [], []
    for d, (y, y_hat) in zip(discriminators, inputs):
        r, f_r = d(y)
        g, f_g = d(y_hat)
        rs.append(r), gs.append(g), fr.append(f_r), fg.append(f_g)
    return rs, gs, fr, fg


class Discriminators(nn.Module):
    """MPD + MSD in one module (one optimizer, one state dict)."""

    def __init__(self, periods: tuple[int, ...] = (2, 3, 5, 7, 11), width: float = 1.0):
        super().__init__()
        self.mpd = MultiPeriodDiscriminator(periods, width)
        self.msd = MultiScaleDiscriminator(width)

    def forward(self, y: torch.Tensor, y_hat: torch.Tensor):
        """(real scores, fake scores, real feature maps, fake feature maps) of all 8 discriminators."""
        a, b = self.mpd(y, y_hat), self.msd(y, y_hat)
        return tuple(x + z for x, z in zip(a, b))


# ----------------------------------------------------------------------------- losses

def feature_loss(fmap_r, fmap_g) -> torch.Tensor:
    """Feature matching: 2 x sum over discriminators and layers of mean |real - fake|."""
    loss = 0.0
    for dr, dg in zip(fmap_r, fmap_g):
        for r, g in zip(dr, dg):
            loss = loss + torch.mean(torch.abs(r.detach() - g))
    return 2.0 * loss


def discriminator_loss(real_scores, fake_scores) -> torch.Tensor:
    """LSGAN: sum of mean (1 - D(real))^2 + mean D(fake)^2."""
    loss = 0.0
    for r, g in zip(real_scores, fake_scores):
        loss = loss + torch.mean((1 - r.float()) ** 2) + torch.mean(g.float() ** 2)
    return loss


def generator_loss(fake_scores) -> torch.Tensor:
    """LSGAN: sum of mean (1 - D(fake))^2."""
    loss = 0.0
    for g in fake_scores:
        loss = loss + torch.mean((1 - g.float()) ** 2)
    return loss


def mel_loss(mel_fake: torch.Tensor, mel_real: torch.Tensor, weight: float = 45.0) -> torch.Tensor:
    """L1 between log-mels, x45 as in the paper."""
    return weight * F.l1_loss(mel_fake.float(), mel_real.float())


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = [
    "HiFiGANConfig", "PRESETS", "Generator", "receptive_field_frames", "ResBlock1", "ResBlock2", "WNConv1d", "WNConvTranspose1d",
    "MultiPeriodDiscriminator", "MultiScaleDiscriminator", "Discriminators", "DiscriminatorP", "DiscriminatorS",
    "feature_loss", "discriminator_loss", "generator_loss", "mel_loss", "count_parameters", "LRELU_SLOPE",
]
