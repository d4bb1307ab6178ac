"""Feed-forward Transformer (FFT) blocks of FastPitch, laid out as NVIDIA's reference.

Parameter names match NVIDIA DeepLearningExamples' FastPitch so its checkpoints load by
identity (`encoder.word_emb`, `encoder.layers.N.dec_attn.qkv_net`, `...pos_ff.CoreNet.0`, ...):
- sinusoidal positional encoding with an `inv_freq` buffer (saved in the state dict), added
  unscaled together with the conditioning (speaker embedding), masked at padding;
- post-LayerNorm residual blocks; one fused `qkv_net` Linear(d_model -> 3*heads*d_head) and an
  `o_net` without bias (the attention width is heads*d_head = 64 in the reference, not d_model);
- position-wise feed-forward as Conv1d(k) -> ReLU -> Conv1d(k) -> Dropout;
- outputs re-masked after every sub-block so padding never leaks into the next layer.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def mask_from_lens(lens: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """[B] lengths -> [B, max_len] bool, True on valid positions."""
    if max_len is None:
        max_len = int(lens.max())
    ids = torch.arange(max_len, device=lens.device)
    return ids.unsqueeze(0) < lens.unsqueeze(1)


class PositionalEmbedding(nn.Module):
    def __init__(self, d_model: int):
        super().__init__()
        inv_freq = 1.0 / (10000 ** (torch.arange(0.0, d_model, 2.0) / d_model))
        self.register_buffer("inv_freq", inv_freq)

    def forward(self, length: int, dtype: torch.dtype) -> torch.Tensor:
        """[length, d_model]: sin of all frequencies, then cos (NVIDIA's order)."""
        pos = torch.arange(length, device=self.inv_freq.device, dtype=self.inv_freq.dtype)
        angles = torch.outer(pos, self.inv_freq)
        return torch.cat([angles.sin(), angles.cos()], dim=1).to(dtype)


class PositionwiseConvFF(nn.Module):
    def __init__(self, d_model: int, d_inner: int, kernel_size: int, dropout: float):
        super().__init__()
        self.CoreNet = nn.Sequential(
            nn.Conv1d(d_model, d_inner, kernel_size, padding=kernel_size // 2),
            nn.ReLU(),
            nn.Conv1d(d_inner, d_model, kernel_size, padding=kernel_size // 2),
            nn.Dropout(dropout),
        )
        self.layer_norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [B, T, C]
        core = self.CoreNet(x.transpose(1, 2)).transpose(1, 2)
        return self.layer_norm(x + core)


class MultiHeadAttn(nn.Module):
    def __init__(self, n_head: int, d_model: int, d_head: int, dropout: float, dropatt: float):
        super().__init__()
        self.n_head, self.d_head = n_head, d_head
        self.scale = d_head ** -0.5
        self.qkv_net = nn.Linear(d_model, 3 * n_head * d_head)
        self.drop = nn.Dropout(dropout)
        self.dropatt = dropatt
        self.o_net = nn.Linear(n_head * d_head, d_model, bias=False)
        self.layer_norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        """x [B, T, C]; pad_mask [B, T] True on valid positions."""
        B, T, _ = x.shape
        q, k, v = self.qkv_net(x).view(B, T, 3, self.n_head, self.d_head).permute(2, 0, 3, 1, 4)
        # Keys at padding get -inf; padded queries still see the valid keys (their rows are
        # masked afterwards), so no row of the softmax is all -inf.
        attn_mask = pad_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropatt if self.training else 0.0, scale=self.scale
        )
        out = out.transpose(1, 2).reshape(B, T, self.n_head * self.d_head)
        return self.layer_norm(x + self.drop(self.o_net(out)))


class TransformerLayer(nn.Module):
    def __init__(self, n_head: int, d_model: int, d_head: int, d_inner: int, kernel_size: int,
                 dropout: float, dropatt: float):
        super().__init__()
        self.dec_attn = MultiHeadAttn(n_head, d_model, d_head, dropout, dropatt)
        self.pos_ff = PositionwiseConvFF(d_model, d_inner, kernel_size, dropout)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        m = pad_mask.unsqueeze(2).to(x.dtype)
        x = self.dec_attn(x, pad_mask) * m
        return self.pos_ff(x) * m


class FFTransformer(nn.Module):
    """A stack of FFT blocks. With `n_embed` it embeds symbol ids (the encoder), else it takes
    a [B, T, d_model] sequence and its lengths (the decoder)."""

    def __init__(self, n_layer: int, n_head: int, d_model: int, d_head: int, d_inner: int,
                 kernel_size: int, dropout: float, dropatt: float, dropemb: float = 0.0,
                 n_embed: int | None = None, padding_idx: int = 0):
        super().__init__()
        self.padding_idx = padding_idx
        self.word_emb = nn.Embedding(n_embed, d_model, padding_idx=padding_idx) if n_embed else None
        self.pos_emb = PositionalEmbedding(d_model)
        self.drop = nn.Dropout(dropemb)
        self.layers = nn.ModuleList(
            TransformerLayer(n_head, d_model, d_head, d_inner, kernel_size, dropout, dropatt)
            for _ in range(n_layer)
        )

    def forward(self, inputs: torch.Tensor, lens: torch.Tensor | None = None,
                conditioning: torch.Tensor | float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (output [B, T, d_model], mask [B, T, 1] float, 1 on valid positions)."""
        if self.word_emb is not None:
            x = self.word_emb(inputs)
            pad_mask = inputs != self.padding_idx if lens is None else mask_from_lens(lens, inputs.size(1))
        else:
            x = inputs
            pad_mask = mask_from_lens(lens, inputs.size(1))
        m = pad_mask.unsqueeze(2).to(x.dtype)
        pos = self.pos_emb(x.size(1), x.dtype).unsqueeze(0) * m
        x = self.drop(x + pos + conditioning)
        for layer in self.layers:
            x = layer(x, pad_mask)
        return x, m
