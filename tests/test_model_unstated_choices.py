"""The choices the paper does not state, as settings: feed-forward sublayer, LGI's projected Hadamard
fusion, the span head's activation; their recipes; and the refusal to train on frozen random words."""

from __future__ import annotations

import json

import pytest
import torch

from cmagrounding import Grounder
from cmagrounding.cli import main
from cmagrounding.errors import ConfigError
from cmagrounding.model.config import CMAConfig
from cmagrounding.model.fusion import Fusion
from cmagrounding.model.network import CMANetwork
from cmagrounding.model.presets import get_preset
from cmagrounding.training.protocol import run_recipe
from cmagrounding.training.recipes import GLOVE_FILE, RECIPES, get_recipe, require_word_vectors

from grounder_fixtures import features, tiny_grounder

D = 16
TINY = dict(video_dim=12, vocab_size=20, word_dim=8, num_clips=10, max_words=6, hidden=D, lstm_hidden=8,
            spe_hidden=8, head_hidden=16, num_heads=2, encoder_layers=1, decoder_layers=1, num_phrases=2,
            dropout=0.0, input_dropout=0.0)


def _count(cfg: CMAConfig) -> int:
    return sum(p.numel() for p in CMANetwork(cfg).parameters())


def _batch(cfg: CMAConfig, B: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    video = torch.randn(B, cfg.num_clips, cfg.video_dim, generator=g)
    vmask = torch.ones(B, cfg.num_clips, dtype=torch.bool)
    vmask[0, 7:] = False
    words = torch.randint(4, cfg.vocab_size, (B, cfg.max_words), generator=g)
    wmask = torch.ones_like(words, dtype=torch.bool)
    wmask[1, 4:] = False
    return video, vmask, words, wmask


def test_paper_presets_keep_their_parameter_counts():
    # today's counts: the new settings default to today's model
    expected = {"charades-simple": 13_578_226, "charades-full": 14_759_666,
                "activitynet-simple": 16_305_438, "activitynet-full": 18_011_678}
    for name, n in expected.items():
        cfg = get_preset(name).model
        assert (cfg.ffn_dim, cfg.fusion_projection, cfg.span_activation) == (0, "plain", "sigmoid")
        assert _count(cfg) == n, name


def test_each_setting_adds_exactly_its_parameters():
    d = 512
    base = get_preset("charades-simple").model
    # feed-forward: two Linear layers and a LayerNorm in each of the 2 encoder + 4 + 3 decoder blocks
    # (the last decoder layer has no query bi-attention)
    blocks = base.encoder_layers + 4 * base.decoder_layers - 1
    assert _count(base.replace(ffn_dim=1024)) - _count(base) == blocks * (2 * d * 1024 + 1024 + d + 2 * d)
    assert _count(base.replace(ffn_dim=1024)) == 23_038_450  # over half of LGI's 33.8 M: why the default is none
    assert _count(get_preset("activitynet-full").model.replace(ffn_dim=1024)) == 27_471_902
    # LGI's "mul" fusion: three d x d Linear layers
    assert _count(base.replace(fusion_projection="lgi")) - _count(base) == 3 * (d * d + d)
    assert _count(base.replace(span_activation="relu")) == _count(base)


@pytest.mark.parametrize("change", [{}, {"ffn_dim": 24}, {"fusion_projection": "lgi"}, {"span_activation": "relu"},
                                    {"fusion_projection": "lgi", "num_phrases": 1}])
def test_shapes_and_ordered_spans(change):
    cfg = CMAConfig(**{**TINY, **change})
    torch.manual_seed(0)
    net = CMANetwork(cfg).eval()
    with torch.no_grad():
        out = net(*_batch(cfg))
    assert out.span.shape == (3, 2) and out.attention.shape == (3, cfg.num_clips)
    assert bool((out.span[:, 0] <= out.span[:, 1]).all())
    assert float(out.attention[0, 7:].abs().sum()) == 0.0  # padded clips still get no attention


def test_lgi_fusion_is_lgis_mul_formula_and_plain_is_the_product():
    torch.manual_seed(0)
    v, g = torch.randn(2, 5, D), torch.randn(2, D)
    plain = Fusion("hadamard", D)
    assert torch.equal(plain(v, g), v * g[:, None, :])
    lgi = Fusion("hadamard", D, "lgi")
    m = lgi.mul
    expected = torch.relu(m["out"](torch.relu(m["video"](v)) * torch.relu(m["guide"](g))[:, None, :]))
    torch.testing.assert_close(lgi(v, g), expected, rtol=0, atol=0)
    assert lgi(v, g).shape == (2, 5, D) and bool((lgi(v, g) >= 0).all())


def test_relu_head_is_relu_then_sort_and_sigmoid_head_is_unchanged():
    torch.manual_seed(0)
    sig = CMANetwork(CMAConfig(**TINY)).eval()
    relu = CMANetwork(CMAConfig(**TINY, span_activation="relu")).eval()
    relu.load_state_dict(sig.state_dict())  # same weights: only the activation differs
    with torch.no_grad():  # outputs of the MLP far outside [0, 1] so that both activations show
        relu.head.mlp[-1].bias.copy_(torch.tensor([-5.0, 7.0]))
        sig.head.mlp[-1].bias.copy_(torch.tensor([-5.0, 7.0]))
    batch = _batch(sig.config)
    captured = {}
    sig.head.mlp.register_forward_hook(lambda mod, inp, out: captured.__setitem__("raw", out.detach()))
    s = sig(*batch).span.detach()
    raw = captured["raw"]
    torch.testing.assert_close(s, torch.sort(torch.sigmoid(raw), -1).values, rtol=0, atol=0)
    r = relu(*batch).span.detach()
    torch.testing.assert_close(r, torch.sort(torch.relu(raw), -1).values, rtol=0, atol=0)
    assert float(r[:, 0].max()) == 0.0 and float(r[:, 1].min()) > 1.0  # not squashed into (0, 1)


def test_relu_span_past_the_end_is_clipped_to_the_video_in_seconds():
    g = tiny_grounder()
    net = CMANetwork(g.network.config.replace(span_activation="relu"))
    net.load_state_dict(g.network.state_dict())
    with torch.no_grad():
        net.head.mlp[-1].bias.copy_(torch.tensor([0.2, 9.0]))
    g = Grounder(net, g.tokenizer, g.video_config, device="cpu")
    m = g.localize(features(duration=10.0), "person opens the door")
    assert 0.0 <= m.start < m.end <= 10.0 and m.end == pytest.approx(10.0)


def test_relu_span_past_the_end_is_clamped_in_the_moment_and_its_seconds():
    """Moment.span is in [0, 1] of what the network saw, whole video or window, so the seconds
    made from it (evaluate --top-k's unwidened answers) never pass the video's end."""
    from cmagrounding.training.annotations import Annotation
    from cmagrounding.training.ranked_answers import ranked_answers
    from cmagrounding.training.stores import MemoryStore
    from cmagrounding.windows import WindowSettings

    g = tiny_grounder()
    net = CMANetwork(g.network.config.replace(span_activation="relu"))
    net.load_state_dict(g.network.state_dict())
    with torch.no_grad():
        net.head.mlp[-1].bias.copy_(torch.tensor([0.2, 9.0]))  # end far past 1
    g = Grounder(net, g.tokenizer, g.video_config, device="cpu")
    whole = g.localize(features(duration=10.0), "person opens the door")
    assert whole.span[1] == 1.0 and 0.0 <= whole.span[0] < 1.0 and whole.to_dict()["span"][1] == 1.0
    for m in g.localize(features(n=40, duration=40.0), "person opens the door", windowed=True, window=8.0, top_k=3):
        assert 0.0 <= m.span[0] <= m.span[1] == 1.0 and m.end == m.window[1] <= 40.0
    feats = features(n=20, duration=10.0)
    (spans, _), = ranked_answers(g, [Annotation("v", 10.0, "person opens the door", 1.0, 3.0)],
                                 MemoryStore({"v": feats.features}), top_k=2)
    assert spans[0, 1] == 10.0 and (spans >= 0.0).all()


def test_settings_are_checked_by_name():
    with pytest.raises(ConfigError, match="span_activation"):
        CMAConfig(span_activation="tanh")
    with pytest.raises(ConfigError, match="fusion_projection"):
        CMAConfig(fusion_projection="mlp")
    with pytest.raises(ConfigError, match="applies to fusion 'hadamard' only"):
        CMAConfig(fusion="concat", fusion_projection="lgi")


@pytest.mark.parametrize("change", [{"ffn_dim": 16}, {"fusion_projection": "lgi"}, {"span_activation": "relu"}])
def test_settings_round_trip_through_save_and_load(tmp_path, change):
    g = tiny_grounder()
    cfg = g.network.config.replace(**change)
    torch.manual_seed(3)
    g = Grounder(CMANetwork(cfg), g.tokenizer, g.video_config, device="cpu")
    g.save_pretrained(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "config.json").read_text())["model"]
    assert all(saved[k] == v for k, v in change.items())
    back = Grounder.from_pretrained(tmp_path / "m", device="cpu")
    assert back.network.config == cfg
    f = features()
    a, b = g.localize(f, "person opens the door"), back.localize(f, "person opens the door")
    assert (a.start, a.end) == (b.start, b.end)


def test_a_config_saved_before_these_settings_loads_with_todays_behaviour():
    from cmagrounding.demo import DEMO_MODEL_DIR

    saved = json.loads((DEMO_MODEL_DIR / "config.json").read_text())["model"]
    assert not {"fusion_projection", "span_activation"} & set(saved)
    cfg = Grounder.from_pretrained(DEMO_MODEL_DIR, device="cpu").network.config
    assert (cfg.fusion_projection, cfg.span_activation) == ("plain", "sigmoid")


VARIANTS = {
    "charades-simple-ffn": ("charades-simple", {"ffn_dim": 1024}),
    "charades-simple-fusion-lgi": ("charades-simple", {"fusion_projection": "lgi"}),
    "charades-simple-relu": ("charades-simple", {"span_activation": "relu"}),
    "activitynet-simple-ffn": ("activitynet-simple", {"ffn_dim": 1024}),
    "activitynet-simple-fusion-lgi": ("activitynet-simple", {"fusion_projection": "lgi"}),
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_one_recipe_per_unstated_choice_changes_only_that_setting(name):
    base_name, change = VARIANTS[name]
    r, base = get_recipe(name), get_recipe(base_name)
    assert r.model == change and r.preset == base.preset and r.dataset == base.dataset
    assert r.paper == base.paper and r.train == base.train and r.loss == base.loss and r.hdf5_key == base.hdf5_key
    assert r.glove == GLOVE_FILE
    cfg = get_preset(r.preset).model.replace(**r.model)
    base_cfg = get_preset(base.preset).model
    differs = {k for k, v in cfg.to_dict().items() if base_cfg.to_dict()[k] != v}
    assert differs == set(change)
    assert get_recipe(name).to_dict() == type(r).from_dict(r.to_dict()).to_dict()  # saved with the model


def test_paper_recipes_expect_glove_and_the_others_do_not():
    # the paper's datasets, and the field's releases trained with the paper's model (qvhighlights-simple,
    # tacos-simple: frozen GloVe as the paper's presets); own data and synthetic learn their embeddings
    for name, r in RECIPES.items():
        paper_model = r.dataset in ("charades-sta", "activitynet-captions", "qvhighlights", "tacos")
        assert (r.glove == GLOVE_FILE) == paper_model, name


def test_no_glove_is_refused_naming_the_option_and_the_file(tmp_path):
    with pytest.raises(ConfigError) as e:
        run_recipe(get_recipe("charades-simple"), tmp_path / "run", annotations=tmp_path, features=tmp_path)
    assert "--glove" in str(e.value) and GLOVE_FILE in str(e.value) and "freeze_embeddings=false" in str(e.value)
    assert not (tmp_path / "run").exists()  # refused before anything was read or written


def test_cli_refuses_without_glove_and_learning_them_must_be_asked_for(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--recipe", "activitynet-simple-ffn", "--annotations", str(tmp_path),
              "--features", str(tmp_path), "--output", str(tmp_path / "run")])
    assert "--glove" in str(e.value.code) and GLOVE_FILE in str(e.value.code)
    r = get_recipe("charades-simple")
    require_word_vectors(r, tmp_path / "glove.txt")  # given: fine
    require_word_vectors(r.replace(model={"freeze_embeddings": False}), None)  # told to learn them: fine
    require_word_vectors(get_recipe("own-data"), None)  # learns its embeddings, expects no GloVe


def test_card_and_info_name_the_settings_a_model_departs_from(tmp_path, capsys):
    g = tiny_grounder()
    cfg = g.network.config.replace(fusion_projection="lgi", span_activation="relu")
    Grounder(CMANetwork(cfg), g.tokenizer, g.video_config, device="cpu").save_pretrained(tmp_path / "m")
    card = (tmp_path / "m" / "README.md").read_text()
    assert "fusion projection `lgi`" in card and "span activation `relu`" in card
    assert main(["info", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "fusion=hadamard (lgi projection)" in out and "span activation=relu" in out
    g.save_pretrained(tmp_path / "plain")  # defaults: the card reads as before
    assert "fusion projection" not in (tmp_path / "plain" / "README.md").read_text()


def test_a_checkpoint_written_before_these_settings_resumes(tmp_path):
    from cmagrounding.errors import CheckpointError
    from cmagrounding.training.checkpoint import STATE_FILE, latest_checkpoint

    from test_training_trainer import _Interrupt, _stop_after_first_epoch, tiny_recipe

    recipe = tiny_recipe(epochs=2)
    with pytest.raises(_Interrupt):
        run_recipe(recipe, tmp_path, callbacks=[_stop_after_first_epoch])
    state_path = latest_checkpoint(tmp_path / "checkpoints") / STATE_FILE
    state = json.loads(state_path.read_text())
    model = state["run"]["model"]
    for key in ("fusion_projection", "span_activation"):  # as an older version wrote it
        del model[key]
    state_path.write_text(json.dumps(state))
    assert run_recipe(recipe, tmp_path, resume=True).train.epochs_completed == 2
    state = json.loads((latest_checkpoint(tmp_path / "checkpoints") / STATE_FILE).read_text())
    state["run"]["model"]["span_activation"] = "relu"  # another model: still refused
    (latest_checkpoint(tmp_path / "checkpoints") / STATE_FILE).write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match="another model configuration"):
        run_recipe(tiny_recipe(epochs=3), tmp_path, resume=True)
