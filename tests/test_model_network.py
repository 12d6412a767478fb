"""The CMA network: shapes, masks, variants, determinism, gradients, weights round trip."""

from __future__ import annotations

import itertools

import pytest
import torch

from cmagrounding.errors import CheckpointError, ConfigError
from cmagrounding.model import PRESETS, CMAConfig, CMANetwork, get_preset
from cmagrounding import _io

TINY = dict(video_dim=24, vocab_size=50, word_dim=12, num_clips=16, max_words=7, hidden=32,
            lstm_hidden=16, spe_hidden=8, head_hidden=16, num_heads=4, encoder_layers=2, decoder_layers=2)


def tiny(**changes) -> CMAConfig:
    return CMAConfig(**{**TINY, **changes})


def batch(cfg: CMAConfig, B: int = 3, N: int | None = None, L: int | None = None, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    N = N or cfg.num_clips
    L = L or cfg.max_words
    video = torch.randn(B, N, cfg.video_dim, generator=g)
    words = torch.randint(2, cfg.vocab_size, (B, L), generator=g)
    vlen = torch.tensor([N, max(1, N // 2), max(1, N - 3)][:B])
    wlen = torch.tensor([L, 1, max(1, L - 2)][:B])
    video_mask = torch.arange(N)[None] < vlen[:, None]
    word_mask = torch.arange(L)[None] < wlen[:, None]
    video = video * video_mask[..., None]
    words = words * word_mask
    return video, video_mask, words, word_mask


def check_output(out, cfg: CMAConfig, B: int, N: int, L: int, video_mask: torch.Tensor) -> None:
    assert out.span.shape == (B, 2)
    assert bool(((out.span >= 0) & (out.span <= 1)).all())
    assert bool((out.span[:, 0] <= out.span[:, 1]).all())
    assert out.attention.shape == (B, N)
    torch.testing.assert_close(out.attention.sum(1), torch.ones(B))
    assert bool((out.attention[~video_mask] == 0).all())
    if cfg.num_phrases == 1:
        assert out.phrase_attention is None
    else:
        assert out.phrase_attention.shape == (B, cfg.num_phrases, L)


VARIANTS = list(itertools.product(["full", "encoder_only", "decoder_only"], ["none", "learned", "sincos"],
                                  ["hadamard", "concat", "add"], [1, 3]))


@pytest.mark.parametrize("structure,position,fusion,K", VARIANTS)
def test_every_variant_shapes_and_padding_invariance(structure, position, fusion, K):
    torch.manual_seed(0)
    cfg = tiny(structure=structure, position=position, fusion=fusion, num_phrases=K)
    net = CMANetwork(cfg).eval()
    N, L = 10, 5
    video, vmask, words, wmask = batch(cfg, N=N, L=L)
    with torch.no_grad():
        out = net(video, vmask, words, wmask)
        check_output(out, cfg, 3, N, L, vmask)
        # Append padded clips and words (with their masks): real outputs must not move.
        pad_v = torch.cat([video, torch.randn(3, 6, cfg.video_dim)], 1)
        pad_vm = torch.cat([vmask, torch.zeros(3, 6, dtype=torch.bool)], 1)
        pad_w = torch.cat([words, torch.randint(2, cfg.vocab_size, (3, 2))], 1)
        pad_wm = torch.cat([wmask, torch.zeros(3, 2, dtype=torch.bool)], 1)
        out2 = net(pad_v, pad_vm, pad_w, pad_wm)
    assert (out2.span - out.span).abs().max() < 1e-5
    assert (out2.attention[:, :N] - out.attention).abs().max() < 1e-5
    assert bool((out2.attention[:, N:] == 0).all())
    if K > 1:
        assert (out2.phrase_attention[..., :L] - out.phrase_attention).abs().max() < 1e-5


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_output_shapes(name):
    p = get_preset(name)
    torch.manual_seed(0)
    net = CMANetwork(p.model).eval()
    B, N, L = 2, p.model.num_clips, p.model.max_words
    video, vmask, words, wmask = batch(p.model, B=B, N=N, L=L)
    with torch.no_grad():
        out = net(video, vmask, words, wmask)
    check_output(out, p.model, B, N, L, vmask)


def test_presets_match_the_paper():
    c = get_preset("charades-simple")
    assert (c.model.video_dim, c.model.max_words, c.model.num_phrases) == (1024, 10, 1)
    assert (c.loss.alpha, c.loss.beta) == (10.0, 0.1)
    a = get_preset("activitynet-full")
    assert (a.model.video_dim, a.model.max_words) == (500, 25) and a.model.num_phrases > 1
    assert (a.loss.alpha, a.loss.beta) == (2.0, 0.4)
    for p in PRESETS.values():  # paper: 2-layer BiLSTM of 256, 4 heads, 2 + 2 layers, N = 128
        m = p.model
        assert (m.lstm_layers, m.lstm_hidden, m.num_heads, m.encoder_layers, m.decoder_layers, m.num_clips) == (2, 256, 4, 2, 2, 128)


def test_fewer_than_half_of_lgi_parameters():
    # LGI's counts instantiated from its own code (FACTS.md): 33,818,355 and 53,591,583.
    lgi = {"charades": 33_818_355, "activitynet": 53_591_583}
    for name in PRESETS:
        n = sum(p.numel() for p in CMANetwork(get_preset(name).model).parameters())
        assert n < lgi[name.split("-")[0]] / 2, (name, n)


def test_backward_reaches_every_trainable_parameter():
    torch.manual_seed(0)
    for cfg in [tiny(num_phrases=3, position="learned", fusion="concat", ffn_dim=8, freeze_embeddings=False),
                tiny(num_phrases=1)]:
        net = CMANetwork(cfg).train()
        from cmagrounding.model import GroundingLoss

        video, vmask, words, wmask = batch(cfg, N=12, L=6)
        out = net(video, vmask, words, wmask)
        target = torch.tensor([[0.1, 0.4], [0.2, 0.3], [0.5, 0.9]])
        clip_mask = torch.zeros(3, 12, dtype=torch.bool)
        clip_mask[:, 2:5] = True
        GroundingLoss()(out, target, clip_mask & vmask).total.backward()
        for name, p in net.named_parameters():
            if p.requires_grad:
                assert p.grad is not None and bool(p.grad.abs().sum() > 0), name
        assert net.query_encoder.embedding.weight.requires_grad == (not cfg.freeze_embeddings)


def test_same_seed_same_output():
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        net = CMANetwork(tiny(num_phrases=2)).eval()
        with torch.no_grad():
            outs.append(net(*batch(net.config)).span)
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)


def test_safetensors_round_trip(tmp_path):
    torch.manual_seed(0)
    cfg = tiny(num_phrases=2, position="learned")
    net = CMANetwork(cfg).eval()
    path = tmp_path / "model.safetensors"
    _io.save_safetensors(path, net.state_dict())
    torch.manual_seed(1)
    other = CMANetwork(cfg).eval()
    _io.load_state_dict_strict(other, _io.load_safetensors(path), source=str(path))
    x = batch(cfg)
    with torch.no_grad():
        torch.testing.assert_close(net(*x).span, other(*x).span, rtol=0, atol=0)
    # the one message format of _io.check_state_dict (model/weights.py had its own)
    with pytest.raises(CheckpointError, match=r"missing \d+ tensor|unexpected \d+ tensor|wrong shape"):
        _io.load_state_dict_strict(CMANetwork(tiny(num_phrases=3)), _io.load_safetensors(path), source=str(path))


def test_config_json_round_trip(tmp_path):
    cfg = tiny(num_phrases=3, fusion="concat")
    cfg.to_json(tmp_path / "c.json")
    assert CMAConfig.from_json(tmp_path / "c.json") == cfg
    with pytest.raises(ConfigError, match=r"unknown CMAConfig keys \['colour'\]"):  # the one from_dict message
        CMAConfig.from_dict({**cfg.to_dict(), "colour": "red"})


@pytest.mark.parametrize("changes,message", [
    (dict(fusion="multiply"), "unknown fusion 'multiply'"),
    (dict(structure="both"), "unknown structure"),
    (dict(position="rotary"), "unknown position"),
    (dict(num_phrases=0), "num_phrases"),
    (dict(hidden=30, lstm_hidden=15, num_heads=4), "divisible by num_heads"),
    (dict(hidden=64), "2 x lstm_hidden"),
    (dict(dropout=1.5), "dropout"),
])
def test_bad_configs_say_what_is_wrong(changes, message):
    with pytest.raises(ConfigError, match=message):
        tiny(**changes)


def test_feature_dimension_mismatch_at_forward():
    cfg = tiny()
    net = CMANetwork(cfg)
    video, vmask, words, wmask = batch(cfg)
    with pytest.raises(ValueError, match=r"\(B, N, 24\).*got \(3, 16, 25\)"):
        net(torch.randn(3, 16, 25), vmask, words, wmask)
    with pytest.raises(ValueError, match="max_words"):
        net(video, vmask, torch.ones(3, 9, dtype=torch.long), torch.ones(3, 9, dtype=torch.bool))
    with pytest.raises(TypeError, match="bool"):
        net(video, vmask.float(), words, wmask)


def test_word_embedding_loading():
    cfg = tiny()
    net = CMANetwork(cfg)
    m = torch.randn(cfg.vocab_size, cfg.word_dim)
    net.load_word_embeddings(m.numpy())
    torch.testing.assert_close(net.query_encoder.embedding.weight.data, m)
    with pytest.raises(ValueError, match="vocab_size, word_dim"):
        net.load_word_embeddings(torch.randn(3, 3))
