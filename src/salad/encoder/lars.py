"""LARS optimiser (You et al. 2017, arXiv:1708.03888) as used for SimCLR's MLP in paper B.

Per parameter tensor p with gradient g (weights: p.ndim > 1; biases and norm scales are
excluded from both weight decay and the trust ratio, as in SimCLR / Barlow Twins):
    g <- g + weight_decay * p
    g <- eta * |p| / |g| * g            (if both norms > 0)
    v <- momentum * v + g;   p <- p - lr * v
"""

from __future__ import annotations

import torch


class LARS(torch.optim.Optimizer):
    def __init__(
        self, params, lr: float, weight_decay: float = 0.0, momentum: float = 0.9, eta: float = 1e-3
    ):
        if lr <= 0:
            raise ValueError(f"LARS: lr must be > 0, got {lr}")
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay, "momentum": momentum, "eta": eta})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if p.ndim > 1:
                    g = g.add(p, alpha=group["weight_decay"])
                    p_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(g)
                    trust = torch.where(
                        (p_norm > 0) & (g_norm > 0), group["eta"] * p_norm / g_norm, torch.ones_like(p_norm)
                    )
                    g = g.mul(trust)
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                buf = state["momentum_buffer"]
                buf.mul_(group["momentum"]).add_(g)
                p.add_(buf, alpha=-group["lr"])
        return loss
