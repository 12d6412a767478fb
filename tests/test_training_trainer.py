"""Trainer: resume == uninterrupted run, checkpoints, time limit, two-process gloo DDP, pretrained folder."""

import json
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from cmagrounding.errors import CheckpointError
from cmagrounding.training.checkpoint import latest_checkpoint, load_checkpoint
from cmagrounding.training.protocol import run_recipe
from cmagrounding.training.recipes import get_recipe
from cmagrounding.training.synthetic import SyntheticConfig


def tiny_recipe(**train):
    """The synthetic recipe shrunk to seconds: 40 videos, a 16-wide model; videos longer than N so
    that random sampling offsets are used, and dropout on, so that resume must restore the RNG."""
    r = get_recipe("synthetic")
    r.synthetic = SyntheticConfig(train_videos=40, val_videos=8, test_videos=8, feature_dim=8, min_clips=12,
                                  max_clips=24, num_actions=3, num_objects=3, seed=5)
    r.model = {**r.model, "video_dim": 8, "num_clips": 16, "hidden": 16, "lstm_hidden": 8, "spe_hidden": 8,
               "head_hidden": 16, "word_dim": 8, "num_heads": 2, "input_dropout": 0.3, "dropout": 0.1}
    r.train = r.train.replace(**{"epochs": 2, "batch_size": 20, "progress": False, "time_limit": None,
                                 "eval_batch_size": 64, "num_threads": 1, **train})
    return r


class _Interrupt(Exception):
    pass


def _stop_after_first_epoch(trainer, epoch, record):
    if epoch == 1:
        raise _Interrupt


def test_resume_after_an_epoch_equals_uninterrupted_run(tmp_path):
    recipe = tiny_recipe(epochs=3)
    full = run_recipe(recipe, tmp_path / "full")
    with pytest.raises(_Interrupt):
        run_recipe(recipe, tmp_path / "cut", callbacks=[_stop_after_first_epoch])
    state = load_checkpoint(latest_checkpoint(tmp_path / "cut" / "checkpoints"))
    assert state.epoch == 1 and state.optimizer["state"]  # Adam moments were saved
    with pytest.raises(CheckpointError, match="resume"):  # never silently restarted over a checkpoint
        run_recipe(recipe, tmp_path / "cut")
    resumed = run_recipe(recipe, tmp_path / "cut", resume=True)

    a = load_file(str(tmp_path / "full" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    last_a = load_file(str(latest_checkpoint(tmp_path / "full" / "checkpoints") / "model.safetensors"))
    last_b = load_file(str(latest_checkpoint(tmp_path / "cut" / "checkpoints") / "model.safetensors"))
    assert all(torch.equal(last_a[k], last_b[k]) for k in last_a)
    assert full.test.to_dict() == resumed.test.to_dict()
    assert [h["val"] for h in full.train.history] == [h["val"] for h in resumed.train.history]
    assert [h["train"]["total"] for h in full.train.history] == [h["train"]["total"] for h in resumed.train.history]
    log = [json.loads(line) for line in (tmp_path / "cut" / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3]  # one record per epoch, none duplicated
    # only the newest checkpoint is kept, and `latest` names it
    assert sorted(p.name for p in (tmp_path / "cut" / "checkpoints").iterdir()) == ["epoch-0003", "latest"]


def test_pretrained_folder_loads_and_scores_the_same(tmp_path):
    from cmagrounding.grounder import Grounder
    from cmagrounding.training.evaluation import evaluate_grounder
    from cmagrounding.training.synthetic import make_synthetic

    recipe = tiny_recipe(epochs=1)
    result = run_recipe(recipe, tmp_path)
    config = json.loads((result.model_dir / "config.json").read_text())
    assert config["recipe"]["name"] == "synthetic" and config["metrics"]["test"]["count"] == 24
    assert "R1@0.5" in (result.model_dir / "README.md").read_text()
    g = Grounder.from_pretrained(result.model_dir, device="cpu")
    data = make_synthetic(recipe.synthetic)
    assert evaluate_grounder(g, data.test, data.store).to_dict() == result.test.to_dict()
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["test"] == result.test.to_dict() and saved["convention"].startswith("IoU")
    # `cmagrounding evaluate` regenerates the synthetic test split from the recipe in config.json
    from cmagrounding.cli import main

    out = tmp_path / "eval.json"
    assert main(["evaluate", "--model", str(result.model_dir), "--dataset", "synthetic", "--json", str(out),
                 "--device", "cpu"]) == 0
    evaluated = json.loads(out.read_text())
    assert {k: evaluated[k] for k in result.test.to_dict()} == result.test.to_dict()


def test_time_limit_stops_between_epochs(tmp_path):
    result = run_recipe(tiny_recipe(epochs=50, time_limit=1e-3), tmp_path)
    assert result.train.stopped_early == "time limit"
    assert result.train.epochs_completed == 1  # the first epoch's length is unknown before it runs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _record_weights(trainer, epoch, record):
    # after each epoch every rank writes a checksum of its replica: DDP must keep them identical
    total = sum(v.double().sum().item() for v in trainer.network.state_dict().values() if v.is_floating_point())
    with open(trainer.output_dir / f"rank{trainer.ctx.rank}-epoch{epoch}.json", "w") as f:
        json.dump({"sum": total}, f)


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), GLOO_SOCKET_IFNAME="lo")
    from cmagrounding.training.distributed import init_distributed

    ctx = init_distributed("cpu")
    try:
        run_recipe(tiny_recipe(epochs=2), out, ctx=ctx, callbacks=[_record_weights])
    finally:
        ctx.close()


@pytest.mark.slow
def test_two_process_gloo_ddp_trains_and_writes_one_model(tmp_path):
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    model = tmp_path / "model"
    assert (model / "model.safetensors").is_file() and (model / "config.json").is_file()
    assert not any(p.name.startswith("model") and p != model for p in tmp_path.iterdir() if p.is_dir())
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]
    assert all(r["train"]["samples"] == 120 for r in log)  # both ranks' samples: 40 videos x 3 queries
    from cmagrounding.grounder import Grounder

    Grounder.from_pretrained(model, device="cpu")
    for epoch in (1, 2):
        sums = [json.loads((tmp_path / f"rank{r}-epoch{epoch}.json").read_text())["sum"] for r in (0, 1)]
        assert sums[0] == sums[1]
    last = load_file(str(latest_checkpoint(tmp_path / "checkpoints") / "model.safetensors"))
    assert sum(v.double().sum().item() for v in last.values() if v.is_floating_point()) == pytest.approx(sums[0], rel=1e-9)


def test_train_cli_on_own_jsonl_data_with_on_the_fly_extraction(tmp_path, capsys):
    """`cmagrounding train --dataset jsonl --videos ...`: features come from the video side's
    VideoEncoder (a random-weight I3D at 64 px here), are cached, and the model keeps that config."""
    from cmagrounding.cli import main
    from cmagrounding.grounder import Grounder
    from cmagrounding.training.annotations import Annotation, save_jsonl
    from cmagrounding.video.config import VideoConfig
    from tools.video.synthetic import coloured_interval_video

    videos, data = tmp_path / "videos", tmp_path / "data"
    videos.mkdir(), data.mkdir()
    rows = []
    for i, (s, e) in enumerate([(0.0, 1.5), (1.5, 3.0), (0.5, 2.0)]):
        coloured_interval_video(videos / f"v{i}.mp4", s, e, duration=3.0, fps=8.0)
        rows.append(Annotation(f"v{i}", 3.0, "the red part", s, e))
    for split in ("train", "val", "test"):
        save_jsonl(rows, data / f"{split}.jsonl")
    vcfg = VideoConfig(extractor="i3d", weights=None, fps=8.0, resize=64, crop=64, precision="fp32")
    (tmp_path / "video.json").write_text(json.dumps(vcfg.to_dict()))
    out = tmp_path / "run"
    assert main(["train", "--recipe", "synthetic", "--dataset", "jsonl", "--annotations", str(data),
                 "--videos", str(videos), "--video-config", str(tmp_path / "video.json"),
                 "--feature-cache", str(tmp_path / "cache"), "--output", str(out), "--epochs", "1",
                 "--no-progress", "--batch-size", "3"]) == 0
    assert "R1@0.5" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["v0.npy", "v1.npy", "v2.npy"]
    g = Grounder.from_pretrained(out / "model", device="cpu")
    assert g.video_config.extractor == "i3d" and g.network.config.video_dim == 1024


def test_glove_vectors_initialize_the_word_embedding(tmp_path):
    rng = np.random.default_rng(0)
    vectors = {w: rng.normal(size=8).round(4) for w in ("person", "door", "opens")}
    glove = tmp_path / "glove.txt"
    glove.write_text("".join(w + " " + " ".join(f"{x:.4f}" for x in v) + "\n" for w, v in vectors.items()))
    recipe = tiny_recipe(epochs=1)
    recipe.model["freeze_embeddings"] = True  # so that the rows are still GloVe's after training
    result = run_recipe(recipe, tmp_path / "run", glove=glove)
    from cmagrounding.text.tokenizer import WordTokenizer

    tok = WordTokenizer.from_file(tmp_path / "run" / "tokenizer.json")
    weight = result.network.query_encoder.embedding.weight.detach().numpy()
    for w, v in vectors.items():
        np.testing.assert_allclose(weight[tok.encode(w)[0]], v, rtol=1e-6)
