"""Query embedding (Eq. 3-6): GloVe words -> 2-layer BiLSTM -> word features Q_in and s_global."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from cmagrounding.model.config import CMAConfig
from cmagrounding.model.position import PositionEncoding


class QueryEncoder(nn.Module):
    """Encodes padded word ids into contextual word features and a global sentence vector."""

    def __init__(self, config: CMAConfig) -> None:
        super().__init__()
        c = config
        self.embedding = nn.Embedding(c.vocab_size, c.word_dim, padding_idx=0)
        self.embedding.weight.requires_grad_(not c.freeze_embeddings)
        self.lstm = nn.LSTM(
            c.word_dim, c.lstm_hidden, num_layers=c.lstm_layers, batch_first=True,
            bidirectional=True, dropout=c.input_dropout if c.lstm_layers > 1 else 0.0,
        )
        self.position = PositionEncoding(c.position, c.max_words, c.hidden)

    def load_word_embeddings(self, matrix: np.ndarray | torch.Tensor) -> None:
        """Copy a (vocab_size, word_dim) matrix, e.g. GloVe vectors, into the word embedding."""
        m = torch.as_tensor(np.asarray(matrix), dtype=self.embedding.weight.dtype)
        if m.shape != self.embedding.weight.shape:
            raise ValueError(
                f"word embedding matrix has shape {tuple(m.shape)}, the model expects "
                f"{tuple(self.embedding.weight.shape)} (vocab_size, word_dim)"
            )
        with torch.no_grad():
            self.embedding.weight.copy_(m)

    def forward(self, words: torch.Tensor, word_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """words (B, L) long, word_mask (B, L) bool -> Q_in (B, L, D) (0 on padding), s_global (B, D)."""
        B, L = words.shape
        lengths = word_mask.sum(1)
        if bool((lengths == 0).any()):
            raise ValueError("every query needs at least one valid word (word_mask row of all False)")
        emb = self.embedding(words)  # (B, L, 300)
        # Packing makes the BiLSTM ignore padding, so h_b_1 and h_f_L are the real ends (Eq. 3-4).
        packed = pack_padded_sequence(emb, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, (h_n, _) = self.lstm(packed)
        q, _ = pad_packed_sequence(out, batch_first=True, total_length=L)  # (B, L, 2 * lstm_hidden)
        s_global = torch.cat([h_n[-2], h_n[-1]], dim=-1)  # Eq. 6: [h_f_L; h_b_1] of the last layer, (B, D)
        q = self.position(q) * word_mask.unsqueeze(-1)  # Eq. 5
        return q, s_global
