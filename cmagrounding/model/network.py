"""The CMA network: input embedding, encoder, decoder and grounding head (Sections 3.2-3.4)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cmagrounding.model.confidence import ConfidenceHead
from cmagrounding.model.config import CMAConfig
from cmagrounding.model.decoder import CMADecoder
from cmagrounding.model.encoder import CMAEncoder
from cmagrounding.model.grounding_head import GroundingHead
from cmagrounding.model.phrases import SemanticPhraseExtractor
from cmagrounding.model.position import PositionEncoding
from cmagrounding.model.query_encoder import QueryEncoder


@dataclass
class CMAOutput:
    """What the network returns for a batch.

    Attributes:
        span: (B, 2) normalized (t_s, t_e), t_s <= t_e (Eq. 20, 22): inside (0, 1) with the default
            sigmoid, in [0, inf) with ``span_activation="relu"`` (then clipped where it is used).
        attention: (B, N) temporal attention a of Eq. 18; sums to 1 over real clips, 0 on padding.
        attention_logits: (B, N) u^T B before the softmax (-inf on padding), for a stable Eq. 25.
        phrase_attention: (B, K, L) SPE matrix A_spe of Eq. 7 (0 on padded words); None for the
            simple model (K = 1), which uses s_global instead of SPE (Eq. 12).
        confidence_logit: (B,) logit of "the moment lies in these clips" from the confidence head
            (an addition to the paper, :mod:`cmagrounding.model.confidence`); None without the head.
    """

    span: torch.Tensor
    attention: torch.Tensor
    attention_logits: torch.Tensor
    phrase_attention: torch.Tensor | None
    confidence_logit: torch.Tensor | None = None


class CMANetwork(nn.Module):
    """Cross-Modality Attention network for video temporal grounding.

    Call with video features (B, N, video_dim), video_mask (B, N) bool, word ids (B, L) and
    word_mask (B, L) bool (True = real clip / word); returns a :class:`CMAOutput`.
    Masks make the output independent of padding: padded clips and words receive no attention
    anywhere, padded words are skipped by the packed BiLSTM, and positions count from the start.
    """

    def __init__(self, config: CMAConfig) -> None:
        super().__init__()
        c = self.config = config
        # Eq. 2: V_in = ReLU(W_v f_v(X)) + PE; dropout after the ReLU is LGI's fallback.
        self.video_proj = nn.Sequential(nn.Linear(c.video_dim, c.hidden), nn.ReLU(), nn.Dropout(c.input_dropout))
        self.video_position = PositionEncoding(c.position, c.num_clips, c.hidden)
        self.query_encoder = QueryEncoder(c)
        self.phrases = SemanticPhraseExtractor(c) if c.num_phrases > 1 else None
        self.encoder = CMAEncoder(c) if c.structure != "decoder_only" else None
        self.decoder = CMADecoder(c) if c.structure != "encoder_only" else None
        self.head = GroundingHead(c)
        self.confidence = ConfidenceHead(c) if c.confidence_head else None  # not in the paper

    def load_word_embeddings(self, matrix: np.ndarray | torch.Tensor) -> None:
        """Copy a (vocab_size, word_dim) matrix (e.g. GloVe) into the word embedding."""
        self.query_encoder.load_word_embeddings(matrix)

    def _check_inputs(self, video, video_mask, words, word_mask) -> None:
        c = self.config
        if video.dim() != 3 or video.shape[-1] != c.video_dim:
            raise ValueError(
                f"video features must have shape (B, N, {c.video_dim}) for this model "
                f"(video_dim={c.video_dim}); got {tuple(video.shape)}"
            )
        B, N = video.shape[:2]
        if N > c.num_clips:
            raise ValueError(f"got {N} clips; this model takes at most num_clips={c.num_clips}")
        if tuple(video_mask.shape) != (B, N):
            raise ValueError(f"video_mask must have shape {(B, N)}, got {tuple(video_mask.shape)}")
        if words.dim() != 2 or words.shape[0] != B:
            raise ValueError(f"words must have shape ({B}, L), got {tuple(words.shape)}")
        if words.shape[1] > c.max_words:
            raise ValueError(f"got {words.shape[1]} words; this model takes at most max_words={c.max_words}")
        if tuple(word_mask.shape) != tuple(words.shape):
            raise ValueError(f"word_mask must have shape {tuple(words.shape)}, got {tuple(word_mask.shape)}")
        if video_mask.dtype != torch.bool or word_mask.dtype != torch.bool:
            raise TypeError("video_mask and word_mask must be bool tensors (True = valid)")
        if not bool(video_mask.any(1).all()):
            raise ValueError("every video needs at least one valid clip (video_mask row of all False)")

    def embed_video(self, video: torch.Tensor) -> torch.Tensor:
        """V_in = ReLU(W_v f_v(X)) + PE (Eq. 2): video (B, N, video_dim) -> (B, N, D).

        It does not depend on the query: ``Grounder`` computes it once per video and passes it to
        :meth:`forward` as ``video_embedding`` for all the video's queries.
        """
        return self.video_position(self.video_proj(video))

    def forward(
        self, video: torch.Tensor, video_mask: torch.Tensor, words: torch.Tensor, word_mask: torch.Tensor,
        video_embedding: torch.Tensor | None = None,
    ) -> CMAOutput:
        """video (B, N, video_dim), video_mask (B, N), words (B, L), word_mask (B, L) -> CMAOutput.

        ``video_embedding`` (B, N, D): ``embed_video(video)`` computed earlier (in eval mode), reused
        for repeated queries on one video.
        """
        self._check_inputs(video, video_mask, words, word_mask)
        v = self.embed_video(video) if video_embedding is None else video_embedding  # V_in (B, N, D), Eq. 2
        q, s_global = self.query_encoder(words, word_mask)  # Q_in (B, L, D), s_global (B, D), Eq. 3-6
        q, s_global = q.to(v.dtype), s_global.to(v.dtype)  # no-op, but in a bf16 copy (model.reduced_precision)
        if self.phrases is not None:
            guides, a_spe = self.phrases(q, word_mask)  # G (B, K, D), A_spe (B, K, L), Eq. 7-8
        else:
            guides, a_spe = s_global.unsqueeze(1), None  # Eq. 12
        f = self.encoder(v, video_mask, guides) if self.encoder is not None else v  # Eq. 9-11
        if self.decoder is not None:
            f = self.decoder(q, word_mask, f, video_mask)  # Eq. 13-16
        span, a, logits, pooled = self.head(f, video_mask)  # Eq. 17-20
        conf = self.confidence(pooled) if self.confidence is not None else None
        return CMAOutput(span=span, attention=a, attention_logits=logits, phrase_attention=a_spe, confidence_logit=conf)
