"""The inference BiLSTM gives nn.LSTM's numbers on a packed sequence (outputs and final states)."""

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from cmagrounding.model import CMANetwork
from cmagrounding.model.bilstm_inference import bilstm_inference
from cmagrounding.model.config import CMAConfig


@pytest.mark.parametrize("B,L,layers", [(1, 1, 2), (1, 4, 2), (5, 10, 2), (4, 7, 1), (3, 6, 3)])
def test_matches_packed_nn_lstm(B, L, layers):
    torch.manual_seed(B * 100 + L)
    lstm = torch.nn.LSTM(12, 8, num_layers=layers, batch_first=True, bidirectional=True,
                         dropout=0.5 if layers > 1 else 0.0).eval()
    x = torch.randn(B, L, 12)
    lengths = torch.randint(1, L + 1, (B,))
    lengths[0] = L
    with torch.no_grad():
        out, (h_ref, _) = lstm(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
        ref, _ = pad_packed_sequence(out, batch_first=True, total_length=L)
        q, h = bilstm_inference(lstm, x, lengths)
    assert q.shape == ref.shape and h.shape == h_ref.shape
    torch.testing.assert_close(q, ref, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(h, h_ref, atol=1e-6, rtol=1e-5)
    # padded steps are exactly zero, as pad_packed_sequence leaves them
    for b in range(B):
        assert torch.count_nonzero(q[b, lengths[b]:]) == 0


def test_weight_cache_follows_parameter_updates():
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(6, 4, num_layers=2, batch_first=True, bidirectional=True).eval()
    x, lengths = torch.randn(2, 3, 6), torch.tensor([3, 2])
    with torch.no_grad():
        before, _ = bilstm_inference(lstm, x, lengths)
        lstm.weight_ih_l0.mul_(2.0)  # in-place: same storage, new version
        after, _ = bilstm_inference(lstm, x, lengths)
        out, _ = lstm(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
        ref, _ = pad_packed_sequence(out, batch_first=True, total_length=3)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, ref, atol=1e-6, rtol=1e-5)


def test_network_gives_the_same_answer_with_and_without_grad():
    """The network uses the fast path under no_grad in eval mode and nn.LSTM otherwise."""
    torch.manual_seed(0)
    cfg = CMAConfig(video_dim=16, vocab_size=20, word_dim=8, num_clips=8, max_words=5, hidden=16,
                    lstm_hidden=8, spe_hidden=8, head_hidden=16, num_heads=2)
    net = CMANetwork(cfg).eval()
    video, vmask = torch.randn(3, 8, 16), torch.ones(3, 8, dtype=torch.bool)
    words = torch.tensor([[3, 4, 5, 0, 0], [6, 7, 8, 9, 10], [2, 0, 0, 0, 0]])
    wmask = words > 0
    with torch.no_grad():
        fast = net(video, vmask, words, wmask)
    slow = net(video, vmask, words, wmask)  # grad enabled: nn.LSTM over the packed sequence
    torch.testing.assert_close(fast.span, slow.span.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast.attention, slow.attention.detach(), atol=1e-5, rtol=1e-5)
