"""The cached-query fast paths give the answers of the plain network call (issue 12 item 4).

The facade runs the network without masks when nothing is padded, projects one video once for a
batch of queries, keeps V_in (Eq. 2) for repeated queries and offers a bf16 copy; each is checked
here against the network called directly on LGI's padded input with every mask in place.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cmagrounding.errors import ConfigError
from cmagrounding.model.attention import MultiHeadAttention, key_mask
from cmagrounding.model.reduced_precision import network_dtype, reduced_copy
from cmagrounding.model.video_cache import cache_for
from cmagrounding.spans import unit_to_seconds
from cmagrounding.video.resample import resample_features

from grounder_fixtures import features, tiny_grounder

QUERIES = ["person opens the door", "person sits on a chair", "a person eats"]


def reference_spans(g, feats, queries):
    """Spans in seconds from the network on the padded (N, D) input with masks, one query at a time."""
    clips, mask, _ = resample_features(feats.features, g.num_clips, offset=0.0)
    out = []
    for q in queries:
        ids, wmask = g.tokenizer.pad([g._prepare([q])[0].ids])
        with torch.no_grad():
            g.network.eval()
            span = g.network(torch.from_numpy(clips)[None], torch.from_numpy(mask)[None], ids, wmask).span[0]
        start, end, _ = unit_to_seconds(float(span[0]), float(span[1]), feats.duration, int(mask.sum()))
        out.append((start, end))
    return out


@pytest.mark.parametrize("n", [5, 8, 20])  # fewer clips than N (padding in the reference), N, more
def test_answers_match_the_plain_network_call(n):
    g = tiny_grounder(num_phrases=1)
    feats = features(n=n)
    ref = reference_spans(g, feats, QUERIES)
    batched = g.localize(feats, QUERIES)  # one video projected once for the batch
    single = [g.localize(feats, q) for q in QUERIES]  # V_in from the cache after the first
    for r, b, s in zip(ref, batched, single):
        assert (b.start, b.end) == pytest.approx(r, abs=1e-5)
        assert (s.start, s.end) == pytest.approx(r, abs=1e-5)


def test_multi_phrase_model_matches_too():
    g = tiny_grounder(num_phrases=2)
    feats = features(n=6)
    for r, m in zip(reference_spans(g, feats, QUERIES), g.localize(feats, QUERIES)):
        assert (m.start, m.end) == pytest.approx(r, abs=1e-5)


def test_video_embedding_is_kept_and_refreshed():
    g = tiny_grounder(num_phrases=1)
    feats = features(n=8)
    cache = cache_for(g.network)
    first = g.localize(feats, QUERIES[0])
    hits = cache.hits
    again = g.localize(feats, QUERIES[0])
    assert cache.hits == hits + 1 and (again.start, again.end) == (first.start, first.end)
    # features changed in place: not answered from the kept entry
    feats.features[:] = np.random.default_rng(7).normal(size=feats.features.shape).astype(np.float32)
    misses = cache.misses
    changed = g.localize(feats, QUERIES[0])
    assert cache.misses == misses + 1
    assert (changed.start, changed.end) == pytest.approx(reference_spans(g, feats, QUERIES[:1])[0], abs=1e-5)
    # a weight of Eq. 2 changed (e.g. a training step): recomputed
    with torch.no_grad():
        g.network.video_proj[0].weight.mul_(0.5)
    misses = cache.misses
    halved = g.localize(feats, QUERIES[0])
    assert cache.misses == misses + 1
    assert (halved.start, halved.end) == pytest.approx(reference_spans(g, feats, QUERIES[:1])[0], abs=1e-5)


def test_v_in_is_computed_once_per_chunk_of_windows_for_all_queries():
    """One way to reuse V_in (Eq. 2): a chunk of windows is embedded once for every query of the
    call, and the answers equal those of one query at a time."""
    g = tiny_grounder(num_phrases=1)
    feats = features(n=20)
    net = g.network
    calls = []
    embed = net.embed_video

    def counting(video):
        calls.append(tuple(video.shape))
        return embed(video)

    net.embed_video = counting
    try:
        many = g.localize(feats, QUERIES, windowed=True, window=float(feats.duration) / 4, top_k=3)
        assert len(calls) == 1 and calls[0][0] > 1  # one chunk holding every window, once for 3 queries
        alone = [g.localize(feats, q, windowed=True, window=float(feats.duration) / 4, top_k=3) for q in QUERIES]
    finally:
        del net.embed_video
    for ms, ones in zip(many, alone):
        np.testing.assert_allclose([(m.start, m.end) for m in ms], [(m.start, m.end) for m in ones], atol=1e-5)


def test_no_mask_when_nothing_is_padded():
    full = torch.ones(2, 5, dtype=torch.bool)
    assert key_mask(full) is None
    part = full.clone()
    part[1, 3:] = False
    assert key_mask(part) is part
    attn = MultiHeadAttention(16, 2, 0.0).eval()
    x, ctx = torch.randn(2, 3, 16), torch.randn(2, 5, 16)
    with torch.no_grad():
        torch.testing.assert_close(attn(x, ctx, None), attn(x, ctx, full), atol=1e-6, rtol=1e-6)


def test_bf16_network_is_opt_in_and_close():
    g = tiny_grounder(num_phrases=1)
    feats = features(n=8)
    assert g.network_precision == "fp32" and network_dtype("fp32", torch.device("cpu")) == torch.float32
    fp32 = g.localize(feats, QUERIES)
    g.network_precision = "bf16"
    bf16 = g.localize(feats, QUERIES)
    copy = reduced_copy(g.network, torch.bfloat16)
    assert copy is not g.network and copy is reduced_copy(g.network, torch.bfloat16)  # made once
    assert copy.query_encoder.lstm.weight_ih_l0.dtype == torch.float32  # the recurrence stays fp32
    assert copy.encoder.layers[0].attn.q.weight.dtype == torch.bfloat16 and copy.head.module.w_b.weight.dtype == torch.float32
    assert g.network.head.w_b.weight.dtype == torch.float32  # the network itself is untouched
    for a, b in zip(fp32, bf16):
        assert abs(a.start - b.start) < 0.05 * feats.duration and abs(a.end - b.end) < 0.05 * feats.duration
    with torch.no_grad():  # a changed weight makes a new copy
        g.network.encoder.layers[0].attn.q.weight.add_(0.01)
    assert reduced_copy(g.network, torch.bfloat16) is not copy
    g.network_precision = "fp16"
    with pytest.raises(ConfigError, match="network_precision"):
        g.localize(feats, QUERIES[0])


def test_auto_precision_follows_the_cpu():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert network_dtype("auto", cpu, fast_bf16=True) == torch.bfloat16
    assert network_dtype("auto", cpu, fast_bf16=False) == torch.float32
    assert network_dtype("auto", cuda, fast_bf16=True) == torch.float32  # launch-bound at batch 1
    assert network_dtype("bf16", cpu) == torch.bfloat16


def test_localize_spells_out_its_return_types():
    """Issue 21: each overload of localize names what it returns (no Any), and a call gives that shape."""
    import typing

    from cmagrounding.grounder import Grounder

    overloads = typing.get_overloads(Grounder.localize)
    returns = [o.__annotations__["return"] for o in overloads]
    assert returns == ["Moment", "Moment | None", "list[Moment]", "list[Moment]", "list[Moment | None]",
                       "list[list[Moment]]"]
    assert all("Any" not in str(o.__annotations__.values()) for o in overloads)
    g = tiny_grounder(num_phrases=1)
    feats = features(n=8)
    from cmagrounding.outputs import Moment

    assert isinstance(g.localize(feats, QUERIES[0]), Moment)
    assert all(isinstance(m, Moment) for m in g.localize(feats, QUERIES[0], top_k=2))
    assert g.localize(feats, QUERIES, min_score=2.0) == [None] * len(QUERIES)  # scores lie in [0, 1]
    assert all(isinstance(ms, list) for ms in g.localize(feats, QUERIES, top_k=2))
