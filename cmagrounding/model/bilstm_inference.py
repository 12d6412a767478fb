"""A BiLSTM forward pass for inference, on the weights of an ``nn.LSTM``: the same numbers, less
overhead.

For a query of a few words, ``nn.LSTM`` over a packed sequence spends almost all its time outside
arithmetic (oneDNN sets up a primitive per layer and direction, packing sorts and scatters): about
15 ms for 4 words at the paper's size on a 2-core CPU, a fifth of the whole network. Here each
layer's input projection is one GEMM over every time step and both directions, and the recurrence
runs both directions at once as one batched matmul per step, so a query costs 2 x L small steps.
Used only without autograd and in eval mode (no inter-layer dropout); training keeps ``nn.LSTM``.

Shapes: B batch, L words, H hidden per direction.
"""

from __future__ import annotations

import torch
from torch import nn

from cmagrounding.model.weights_version import weights_key


def _reverse_index(lengths: torch.Tensor, L: int) -> torch.Tensor:
    """(B, L) index that reverses each row's first ``lengths[b]`` steps and keeps padding in place."""
    t = torch.arange(L, device=lengths.device).unsqueeze(0)  # (1, L)
    n = lengths.unsqueeze(1)  # (B, 1)
    return torch.where(t < n, n - 1 - t, t)


def _stacked_weights(lstm: nn.LSTM) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per layer, both directions' weights stacked for batched matmuls: ``(W_ih^T (2, in, 4H),
    W_hh^T (2, H, 4H), b_ih + b_hh (2, 4H))``, contiguous. Cached on the module until a parameter
    changes (its storage or version), so a query does not copy megabytes of weights."""
    key = weights_key(lstm)
    cached = getattr(lstm, "_cma_stacked", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    stacked = []
    with torch.no_grad():
        for layer in range(lstm.num_layers):
            names = [f"l{layer}", f"l{layer}_reverse"]
            w_ih = torch.stack([getattr(lstm, f"weight_ih_{n}").t() for n in names]).contiguous()
            w_hh = torch.stack([getattr(lstm, f"weight_hh_{n}").t() for n in names]).contiguous()
            bias = torch.stack([getattr(lstm, f"bias_ih_{n}") + getattr(lstm, f"bias_hh_{n}") for n in names])
            stacked.append((w_ih, w_hh, bias))
    lstm._cma_stacked = (key, stacked)
    return stacked


def bilstm_inference(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run a bidirectional, batch-first ``lstm`` on padded ``x`` (B, L, in) with ``lengths`` (B,).

    Returns ``(out (B, L, 2H), h_n (2 * num_layers, B, H))`` as ``nn.LSTM`` on the packed sequence
    followed by ``pad_packed_sequence`` gives them: outputs zero on padding, ``h_n`` in
    (layer, direction) order, the backward direction's state taken after its first real word.
    """
    if not (lstm.bidirectional and lstm.batch_first and lstm.bias) or lstm.proj_size:
        raise ValueError("bilstm_inference needs a bidirectional, batch-first nn.LSTM with biases and no projection")
    B, L, _ = x.shape
    H = lstm.hidden_size
    lengths = lengths.to(device=x.device, dtype=torch.long)
    rev = _reverse_index(lengths, L)  # (B, L)
    valid = (torch.arange(L, device=x.device).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(-1)  # (B, L, 1)
    layer_in = x
    finals = []
    for layer, (w_ih_t, w_hh_t, bias) in enumerate(_stacked_weights(lstm)):
        # the backward direction reads each row's real words last to first
        x_rev = torch.gather(layer_in, 1, rev.unsqueeze(-1).expand_as(layer_in))  # (B, L, in)
        seq = torch.stack([layer_in, x_rev]).reshape(2, B * L, -1)  # (2, B*L, in)
        # one GEMM per direction for every step's input projection
        gates_x = torch.baddbmm(bias.unsqueeze(1), seq, w_ih_t).view(2, B, L, 4 * H)  # (2, B, L, 4H)
        h = x.new_zeros(2, B, H)
        c = x.new_zeros(2, B, H)
        outs = []
        for t in range(L):
            g = gates_x[:, :, t] + torch.bmm(h, w_hh_t)  # (2, B, 4H), PyTorch's gate order i, f, g, o
            i, f, gg, o = g.chunk(4, dim=-1)
            c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
            h_new = torch.sigmoid(o) * torch.tanh(c_new)
            m = valid[:, t].unsqueeze(0)  # (1, B, 1): rows past their length keep their state
            h = torch.where(m, h_new, h)
            c = torch.where(m, c_new, c)
            outs.append(h_new * m)
        out = torch.stack(outs, dim=2)  # (2, B, L, H)
        back = torch.gather(out[1], 1, rev.unsqueeze(-1).expand(B, L, H))  # back to word order
        layer_in = torch.cat([out[0], back], dim=-1)  # (B, L, 2H)
        finals.extend([h[0], h[1]])
    return layer_in, torch.stack(finals)
