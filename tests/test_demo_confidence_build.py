"""The confidence build's command end to end on a tiny work folder: generated annotations, random
features in place of I3D (the command reads features, never videos), one epoch."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cmagrounding.demo.settings import default_build_config, video_config


@pytest.fixture()
def tiny_work(tmp_path):
    from cmagrounding._io import write_json_atomic
    from cmagrounding.demo.build import stage_generate

    build = default_build_config()
    build.num_train, build.num_val, build.num_long, build.long_duration = 6, 2, 2, 45.0
    work = tmp_path / "work"
    stage_generate(build, work)
    vcfg = video_config(build)
    spr = vcfg.stride / vcfg.fps
    rng = np.random.default_rng(0)
    for split in ("train", "val", "long"):
        rows = [json.loads(x) for x in (work / "data" / split / f"{split}.jsonl").read_text().splitlines()]
        (work / "features" / split).mkdir(parents=True)
        for video, duration in {r["video"]: r["duration"] for r in rows}.items():
            n = int(math.ceil(duration / spr))
            np.save(work / "features" / split / f"{video}.npy", rng.standard_normal((n, vcfg.feature_dim)).astype(np.float32))
    write_json_atomic(work / "features" / "video_config.json", vcfg.to_dict())
    write_json_atomic(work / "build_config.json", build.to_dict())
    return work


@pytest.mark.slow
def test_confidence_build_with_a_long_split_and_its_own_negative_ratio(tiny_work, tmp_path):
    from cmagrounding.demo.confidence_build import main
    from cmagrounding.grounder import Grounder

    out = tmp_path / "model"
    args = ["--work", str(tiny_work), "--out", str(out), "--epochs", "1", "--threads", "1",
            "--long-split", "long", "--negative-ratio", "1"]
    assert main(args + ["--long-negative-ratio", "4", "--absent-ratio", "2"]) == 0
    recipe = json.loads((out / "config.json").read_text())["recipe"]
    long_info = recipe["long_split"]
    assert long_info["split"] == "long" and long_info["videos"] == 2 and long_info["negative_ratio"] == 4.0
    assert recipe["confidence"]["negative_ratio"] == 1.0  # the two-video windows keep --negative-ratio
    assert recipe["command"].endswith("--long-split long --long-negative-ratio 4 --absent-ratio 2")
    # 2 absent sentences per annotation of the long split, one window each
    assert long_info["absent_ratio"] == 2.0 and long_info["absent_windows"] == 2 * long_info["annotations"]
    # about 4 negatives per positive among the long windows (some do not fit beside a long moment)
    positives = long_info["positives"]
    negatives = long_info["windows"] - positives - long_info["absent_windows"]
    assert positives > 0 and 2.5 * positives <= negatives <= 4 * positives
    # the saved folder loads strictly and answers with a confidence
    g = Grounder.from_pretrained(out, device="cpu")
    assert g.windows is not None and g.network.config.confidence_head
    from cmagrounding.errors import DatasetError

    with pytest.raises(DatasetError, match=r"data/long180/long180.jsonl: annotation file not found"):
        main(args[:-4] + ["--long-split", "long180"])  # a split that is not in the folder is named
    with pytest.raises(SystemExit, match="--absent-ratio"):
        main(args[:-4] + ["--absent-ratio", "1"])  # absent sentences are drawn from a long split
    with pytest.raises(SystemExit, match="--absent-hard-fraction"):
        main(args + ["--absent-hard-fraction", "0.5"])  # it places absent windows, of which there are none
