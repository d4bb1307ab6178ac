"""LAMB (as NVIDIA's FastPitch trains with apex FusedLAMB), AdamW, and the reference LR schedule.

LAMB here follows apex FusedLAMB's defaults, which the reference relies on without saying so:
  1. the *global* gradient norm over all parameters is clipped to `max_grad_norm` (1.0) inside
     the optimizer: g <- g * max_norm / max(norm, max_norm);
  2. Adam moments with bias correction; update u = m_hat / (sqrt(v_hat) + eps) + wd * p;
  3. per-tensor trust ratio ||p|| / ||u|| (1 when either norm is 0), applied where wd != 0;
  4. p <- p - lr * ratio * u.
All of it runs with torch._foreach kernels and no host sync, so a 46 M-parameter step stays cheap.
"""
from __future__ import annotations

import math

import torch

from tts_cli.errors import ConfigError


class Lamb(torch.optim.Optimizer):
    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.98),
        eps: float = 1e-9,
        weight_decay: float = 1e-6,
        max_grad_norm: float | None = 1.0,
    ):
        if lr < 0 or eps < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ConfigError(f"invalid LAMB settings lr={lr} betas={betas} eps={eps}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))
        self.max_grad_norm = max_grad_norm

    def global_grad_norm(self) -> torch.Tensor | None:
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        if not grads:
            return None
        return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)).float())

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        norm = self.global_grad_norm()
        if norm is None:
            return loss
        clip = None
        if self.max_grad_norm:
            max_norm = torch.tensor(float(self.max_grad_norm), device=norm.device)
            clip = max_norm / torch.maximum(norm, max_norm)  # exactly 1 below the threshold
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad.float() if p.grad.dtype != torch.float32 else p.grad for p in params]
            if clip is not None:
                grads = torch._foreach_mul(grads, clip)
            beta1, beta2 = group["betas"]
            exp_avg, exp_avg_sq = [], []
            for p in params:
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, dtype=torch.float32)
                    state["exp_avg_sq"] = torch.zeros_like(p, dtype=torch.float32)
                state["step"] += 1
                exp_avg.append(state["exp_avg"])
                exp_avg_sq.append(state["exp_avg_sq"])
            step = self.state[params[0]]["step"]
            torch._foreach_mul_(exp_avg, beta1)
            torch._foreach_add_(exp_avg, grads, alpha=1 - beta1)
            torch._foreach_mul_(exp_avg_sq, beta2)
            torch._foreach_addcmul_(exp_avg_sq, grads, grads, value=1 - beta2)
            bc1 = 1 - beta1 ** step
            bc2 = 1 - beta2 ** step
            denom = torch._foreach_sqrt(exp_avg_sq)
            torch._foreach_div_(denom, math.sqrt(bc2))
            torch._foreach_add_(denom, group["eps"])
            update = torch._foreach_div(exp_avg, denom)
            torch._foreach_div_(update, bc1)
            wd = group["weight_decay"]
            p32 = [p.float() if p.dtype != torch.float32 else p for p in params]
            if wd != 0:
                torch._foreach_add_(update, p32, alpha=wd)
                w_norm = torch.stack(torch._foreach_norm(p32))
                u_norm = torch.stack(torch._foreach_norm(update))
                ratio = torch.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm, torch.ones_like(w_norm))
                torch._foreach_mul_(update, list(ratio.unbind(0)))
            if all(p.dtype == torch.float32 for p in params):
                torch._foreach_add_(params, update, alpha=-group["lr"])
            else:
                for p, u in zip(params, update):
                    p.add_(u.to(p.dtype), alpha=-group["lr"])
        return loss


def build_optimizer(params, name: str = "lamb", lr: float = 0.1, betas=(0.9, 0.98), eps: float = 1e-9,
                    weight_decay: float = 1e-6, max_grad_norm: float | None = 1.0) -> torch.optim.Optimizer:
    """`lamb` (the reference) or `adamw` (torch's; fused on CUDA)."""
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ConfigError("no trainable parameters (is everything frozen?)")
    name = name.lower()
    if name == "lamb":
        return Lamb(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, max_grad_norm=max_grad_norm)
    if name in ("adamw", "adam"):
        kw = {"fused": True} if params[0].is_cuda else {}
        return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, **kw)
    raise ConfigError(f"unknown optimizer {name!r} (lamb | adamw)")


class NoamSchedule:
    """Learning-rate factor of NVIDIA's FastPitch recipe for optimizer step s (1-based):
    s / warmup^1.5 during warm-up, 1 / sqrt(s) after (so lr peaks at lr/sqrt(warmup) at s = warmup).

    A callable object (not a lambda) so LambdaLR's state_dict stores its settings as plain data.
    LambdaLR calls it with the number of scheduler steps done so far (k), i.e. s = k + 1.
    """

    def __init__(self, warmup: int = 1000):
        self.warmup = int(warmup)

    def factor(self, step: int) -> float:
        step = max(1, int(step))
        if self.warmup <= 0:
            return 1.0 / math.sqrt(step)
        if step > self.warmup:
            return 1.0 / math.sqrt(step)
        return step / self.warmup ** 1.5

    def __call__(self, k: int) -> float:
        return self.factor(k + 1)


class ConstantSchedule:
    """Linear warm-up to the base lr, then constant (the usual choice for fine-tuning with AdamW)."""

    def __init__(self, warmup: int = 0):
        self.warmup = int(warmup)

    def factor(self, step: int) -> float:
        return 1.0 if self.warmup <= 0 else min(1.0, max(1, int(step)) / self.warmup)

    def __call__(self, k: int) -> float:
        return self.factor(k + 1)


def build_scheduler(optimizer, name: str = "noam", warmup: int = 1000) -> torch.optim.lr_scheduler.LambdaLR:
    name = name.lower()
    if name == "noam":
        fn = NoamSchedule(warmup)
    elif name == "constant":
        fn = ConstantSchedule(warmup)
    else:
        raise ConfigError(f"unknown lr schedule {name!r} (noam | constant)")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)


__all__ = ["Lamb", "build_optimizer", "NoamSchedule", "ConstantSchedule", "build_scheduler"]
