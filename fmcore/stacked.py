"""K ``VelocityMLP`` networks of one shape as rows of one flat tensor: their inputs, their loss and
its exact gradient, written out by hand (no autograd graph).

Row k of ``theta`` (K, P) holds network k's parameters in ``VelocityMLP``'s order, W_0, b_0, ...,
W_L, b_L (W_l (out, in), b_l (out,)). Features run along the middle axis, h (K, width, B) (with
d = 2 outputs, the batch-major layout's (B, 2) products are several times slower on CPU):

    x_l = W_l h_l + b_l,   h_{l+1} = act(x_l)   (l < L),   v = W_L h_L + b_L        (K, d, B)
    loss_k = (1/B) sum_b |v_k[:, b] - target_k[:, b]|^2

and, with weights w_k on the losses (0 for a network not stepped), the backward pass of sum_k w_k loss_k:

    g_L = (2 w_k / B) (v - target),   dW_l = g_l h_l^T,   db_l = sum_b g_l,
    g_{l-1} = act'(x_{l-1}) * (W_l^T g_l)

act' is applied by torch's own derivative kernels (``ACTIVATION_GRADS``: what autograd calls for
that activation), so each row's gradient is autograd's (tests/fmcore/test_stacked.py compares them
and checks finite differences). Why not autograd: one step of 30 networks on a CPU thread
(``bench/engine.py``) spends a share of its time in the graph's bookkeeping and in fresh tensors;
here every activation lives in a buffer kept from one step to the next (a fresh (30, 64, 256)
tensor per op cost about a thousand page faults a step) and each product writes straight into
its place in the gradient rows.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .models import ModelConfig, VelocityMLP

__all__ = ["ACTIVATION_GRADS", "StackedMLP"]

_aten = torch.ops.aten
_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
KEPT_LAYERS = 16
"""Row blocks whose layer views ``StackedMLP.layers`` keeps (a CPU step of K slots uses 2 per pass)."""

Forward = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Backward = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

ACTIVATION_GRADS: dict[str, tuple[Forward, Backward]] = {
    "silu": (
        lambda x, out: _aten.silu.out(x, out=out),
        lambda grad, x, a, out: _aten.silu_backward.grad_input(grad, x, grad_input=out),
    ),
    "gelu": (
        lambda x, out: _aten.gelu.out(x, out=out),
        lambda grad, x, a, out: _aten.gelu_backward.grad_input(grad, x, grad_input=out),
    ),
    "selu": (
        lambda x, out: _aten.elu.out(x, _SELU_ALPHA, _SELU_SCALE, 1.0, out=out),
        lambda grad, x, a, out: _aten.elu_backward.grad_input(
            grad, _SELU_ALPHA, _SELU_SCALE, 1.0, False, x, grad_input=out
        ),
    ),
    "relu": (
        lambda x, out: _aten.relu.out(x, out=out),
        lambda grad, x, a, out: _aten.threshold_backward.grad_input(grad, a, 0, grad_input=out),
    ),
    "tanh": (
        lambda x, out: _aten.tanh.out(x, out=out),
        lambda grad, x, a, out: _aten.tanh_backward.grad_input(grad, a, grad_input=out),
    ),
}
"""Each ``models.ACTIVATIONS`` key: (act into out from x, grad * act'(x) into out from x or a = act(x)),
both written with the kernels torch's ``nn`` module and its autograd formula use."""


class StackedMLP:
    """The networks of one ``ModelConfig`` on rows of ``theta``, with buffers reused between calls.

    Args:
        config: the networks' shape.  device: where the buffers live.
    """

    def __init__(self, config: ModelConfig, device: torch.device):
        self.config, self.device = config, device
        net = VelocityMLP(config).to(device)  # for its shapes and frequencies (no weights used)
        self.freqs, self.z_freqs = net.freqs, net.z_freqs
        self.shapes = [p.shape for p in net.parameters()]
        self.sizes = [p.numel() for p in net.parameters()]
        self.width_in = self.shapes[0][1]
        self.activation, self.activation_grad = ACTIVATION_GRADS[config.activation]
        self._buffers: dict[tuple, torch.Tensor] = {}
        self._rows: dict[tuple, torch.Tensor] = {}  # the first k rows of each buffer, by (key, k)
        self._layers: dict[tuple, list[tuple[torch.Tensor, torch.Tensor]]] = {}

    def _buffer(self, name: str, k: int, width: int, n: int, dtype: torch.dtype) -> torch.Tensor:
        """A (k, width, n) tensor kept for this name, overwritten by each call that uses it: the
        first k rows of the largest one asked for so far, so that calls of fewer rows (the last pass
        of a step, a bank with fewer slots) neither reallocate nor hold one buffer per size. The
        row views are kept too: a step asks for about 30 of them per pass."""
        key = (name, width, n, dtype)
        rows = self._rows.get((key, k))
        if rows is None:
            if key not in self._buffers or len(self._buffers[key]) < k:
                self._buffers[key] = torch.empty(k, width, n, dtype=dtype, device=self.device)
                self._rows = {r: v for r, v in self._rows.items() if r[0] != key}
            rows = self._rows[(key, k)] = self._buffers[key][:k]
        return rows

    def layers(self, theta: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Views (W_l (k, out, in), b_l (k, out)) of rows ``theta`` (k, P) (or of gradient rows).

        Kept for the last ``KEPT_LAYERS`` row blocks, by their memory and layout: a step asks for
        the same blocks (its passes' parameter and gradient rows) every time, and a kept view holds
        its storage, so a block at the same address and layout is the same memory."""
        key = (theta.data_ptr(), theta.shape, theta.stride(), theta.dtype, theta.device)
        kept = self._layers.get(key)
        if kept is None:
            k = len(theta)
            views = [
                x.view(k, *shape) for x, shape in zip(theta.split(self.sizes, 1), self.shapes, strict=True)
            ]
            kept = list(zip(views[::2], views[1::2], strict=True))
            if len(self._layers) >= KEPT_LAYERS:
                del self._layers[next(iter(self._layers))]
            self._layers[key] = kept
        return kept

    def features(self, z: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """``VelocityMLP.forward``'s inputs in its order (z, time features, features of z, one-hot
        label), features-major: z (K, B, d), t (K, B), labels (K, B) int64 (the null label
        n_classes included) for a labelled config -> (K, width_in, B), a buffer the next call overwrites.

        The labels are not range-checked (``VelocityMLP.label_features`` does): the trainers' draws
        are valid, and the check's sync would stall every step on a GPU."""
        (k, n, d), nf, zf = z.shape, len(self.freqs), len(self.z_freqs)
        h = self._buffer("features", k, self.width_in, n, z.dtype)
        # Each angle is written where its cosine goes, its sine taken from there, then the cosine in
        # place; the features of z from z's rows of h, not from z.mT, whose strides made the
        # product a permuted tensor and its flattening a copy (a third of this call's time).
        h[:, :d] = z.mT
        sin_t, cos_t = h[:, d : d + nf], h[:, d + nf : d + 2 * nf]
        torch.mul(t[:, None, :], self.freqs[:, None], out=cos_t)
        torch.sin(cos_t, out=sin_t)
        cos_t.cos_()
        at = d + 2 * nf
        if zf:
            sin_z, cos_z = h[:, at : at + d * zf], h[:, at + d * zf : at + 2 * d * zf]
            torch.mul(h[:, :d, None, :], self.z_freqs[:, None], out=cos_z.unflatten(1, (d, zf)))
            torch.sin(cos_z, out=sin_z)
            cos_z.cos_()
            at += 2 * d * zf
        if labels is not None:
            h[:, at:].zero_().scatter_(1, labels[:, None, :], 1.0)
        return h

    def forward(self, theta: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """The fields of rows ``theta`` (k, P) at features h (k, width_in, B): v (k, d, B), a buffer
        the next call overwrites. Keeps each hidden layer's x_l and h_{l+1} for ``backward``."""
        (k, _, n), hidden, dtype = h.shape, self.config.hidden, h.dtype
        *layers, (weight, bias) = self.layers(theta)
        for i, (w, b) in enumerate(layers):
            x = torch.baddbmm(b[:, :, None], w, h, out=self._buffer(f"x{i}", k, hidden, n, dtype))
            h = self.activation(x, self._buffer(f"h{i}", k, hidden, n, dtype))
        return torch.baddbmm(bias[:, :, None], weight, h, out=self._buffer("v", k, self.config.dim, n, dtype))

    def loss_and_grad(
        self,
        theta: torch.Tensor,
        h: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor,
        grad: torch.Tensor,
    ) -> torch.Tensor:
        """Each row's loss and, into ``grad`` (k, P), the gradient of sum_k weight_k loss_k.

        Args:
            theta: (k, P) rows.  h: (k, width_in, B) features.  target: (k, B, d).
            weight: (k,) weights of the losses (0: that row's gradient is 0).  grad: (k, P), overwritten.
        Returns:
            (k,) losses (unweighted).
        """
        (k, _, n), hidden, dtype = h.shape, self.config.hidden, h.dtype
        residual = self.forward(theta, h).sub_(target.mT)
        losses = residual.square().sum(1).mean(1)
        g = residual.mul_(weight[:, None, None] * (2.0 / n))
        layers, grads = self.layers(theta), self.layers(grad)
        features = [h, *(self._buffer(f"h{i}", k, hidden, n, dtype) for i in range(len(layers) - 1))]
        # W^T g and act' * (W^T g) in two buffers: an out= that aliases its input costs a copy
        back, below = self._buffer("back", k, hidden, n, dtype), self._buffer("g", k, hidden, n, dtype)
        for i in range(len(layers) - 1, -1, -1):
            grad_w, grad_b = grads[i]
            if i and self.device.type == "cpu":  # there a product into strided rows is ~15 % slower
                contiguous = self._buffer(f"grad_w{i}", k, *grad_w.shape[1:], dtype)
                grad_w.copy_(torch.bmm(g, features[i].mT, out=contiguous))
            elif i:  # elsewhere one kernel: the product writes the rows
                torch.bmm(g, features[i].mT, out=grad_w)
            else:  # as (width_in, B) x (B, hidden), transposed: half the time here (width_in 10, hidden 64)
                transposed = self._buffer("grad_w0", k, self.width_in, hidden, dtype)
                grad_w.copy_(torch.bmm(h, g.mT, out=transposed).mT)
            torch.sum(g, 2, out=grad_b)
            if i:
                torch.bmm(layers[i][0].mT, g, out=back)
                g = self.activation_grad(
                    back, self._buffer(f"x{i - 1}", k, hidden, n, dtype), features[i], below
                )
        return losses
