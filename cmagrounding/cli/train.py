"""``cmagrounding train``: run a named recipe end to end and compare with the paper.

    cmagrounding train --recipe synthetic                      # no outside data, ~1-2 min on CPU
    cmagrounding train --recipe charades-full --annotations data/charades_sta \\
        --features data/charades_i3d --glove glove.840B.300d.txt
    torchrun --nproc_per_node 4 -m cmagrounding train --recipe activitynet-full ...   # DDP
    cmagrounding train --recipe charades-simple --dataset jsonl --annotations my_data/ \\
        --features my_data/features --glove glove.840B.300d.txt  # own data: train/val/test.jsonl
    cmagrounding train --recipe own-data --annotations my_data/ --features feats \\
        --set model.hidden=64 --set model.lstm_hidden=32       # own data, a smaller model (README.md)
    cmagrounding train --recipe own-data --head-only --init runs/charades-full/model \\
        --annotations my_data/ --features feats                # a confidence head for a trained model
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path

_logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from cmagrounding.training.recipes import recipe_names

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__
    parser.add_argument("--recipe", choices=recipe_names(), help="named configuration (see --list-recipes)")
    parser.add_argument("--list-recipes", action="store_true", help="list the recipes with the paper's numbers and exit")
    parser.add_argument("--output", help="run folder (default runs/<recipe>); the model goes to <output>/model")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --output")
    head = parser.add_argument_group("confidence head and windows (additions to the paper; docs/training.md)")
    head.add_argument("--head-only", action="store_true",
                      help="train only a confidence head on the frozen weights of --init (its answers on videos run "
                      "whole do not change); the recipe gives the data, the head's windows and the training settings")
    head.add_argument("--init", metavar="MODEL", help="with --head-only: the trained pretrained folder")
    head.add_argument("--head", action=argparse.BooleanOptionalAction, default=None,
                      help="train the confidence head alongside the network (default: the recipe's; on for own-data "
                      "and every non-paper recipe, off for the paper presets)")
    head.add_argument("--standardize", action=argparse.BooleanOptionalAction, default=None,
                      help="standardize the input features (folded into the network before saving; default: the recipe's)")
    head.add_argument("--crops", type=int, help="random crops around the moment per training annotation (default: the recipe's)")
    head.add_argument("--absent", metavar="FILE", help='JSON Lines of {"video", "query"}: sentences known to be nowhere '
                      "in that training video, extra negatives for the confidence head")
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", choices=["charades-sta", "activitynet-captions", "qvhighlights", "tacos", "jsonl"],
                      help="override the recipe's dataset (jsonl: a folder of train/val/test.jsonl for own data)")
    data.add_argument("--annotations", help="folder of the dataset's original annotation files (or the jsonl folder)")
    data.add_argument("--features", help="folder of <video>.npy or .npz features (read through the packed store in it "
                      "when there is one: cmagrounding pack-features), a packed store, or an .h5/.hdf5 file; "
                      "A,B joins sources along the feature dimension (rows cut to the shorter)")
    data.add_argument("--hdf5-key", help="dataset inside each video's HDF5 group (ActivityNet C3D: c3d_features)")
    data.add_argument("--npz-key", help="array inside each .npz feature file (default features, as HERO's releases)")
    data.add_argument("--l2-normalize", action="store_true",
                      help="divide each feature row by its L2 norm (per source when --features joins several "
                      "with commas, as Moment-DETR); recorded with the model")
    data.add_argument("--videos", help="extract features on the fly from the video files in this folder")
    data.add_argument("--extractor", default="i3d_kinetics400", help="extractor for --videos (default i3d_kinetics400)")
    data.add_argument("--feature-cache", help="with --videos: save extracted features here as .npy and reuse them")
    data.add_argument("--video-config", help="JSON file of the VideoConfig that made --features (stored with the model; "
                      "default: the extraction settings a packed store recorded, if any)")
    data.add_argument("--glove", help="GloVe text file (e.g. glove.840B.300d.txt) for the word embeddings")
    data.add_argument("--val", choices=["test", "holdout", "val", "none"],
                      help="how the best epoch is chosen (default: the recipe's; test = LGI's protocol)")
    data.add_argument("--val-fraction", type=float, help="with --val holdout: fraction of training videos held out")
    data.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                      help="change one setting of the recipe, e.g. --set model.num_clips=64 --set loss.alpha=5 "
                      "--set train.lr_schedule=cosine --set head.stage_epochs=0 (value as JSON, else a string; "
                      "repeatable; sections: model (CMAConfig), loss (LossConfig), train (TrainConfig), head "
                      "(HeadSettings), head.windows (ConfidenceSettings))")
    opt = parser.add_argument_group("training (defaults: the recipe's)")
    opt.add_argument("--epochs", type=int)
    opt.add_argument("--batch-size", type=int, help="global batch size (split over DDP processes)")
    opt.add_argument("--lr", type=float)
    opt.add_argument("--seed", type=int)
    opt.add_argument("--device", help="cpu, cuda or cuda:K (default: CUDA when available)")
    opt.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None, help="mixed precision (default: on with CUDA)")
    opt.add_argument("--num-workers", type=int)
    opt.add_argument("--threads", type=int, help="torch CPU threads per process")
    opt.add_argument("--time-limit", type=float, help="seconds; stop before an epoch that would end past it")
    opt.add_argument("--log-every", type=int, help="also log the loss every N steps")
    opt.add_argument("--no-progress", action="store_true", help="no progress bar")


def _list_recipes() -> None:
    from cmagrounding.training.recipes import RECIPES

    for r in RECIPES.values():
        paper = ", ".join(f"{k} {v:.2f}" for k, v in r.paper.items()) or "-"
        print(f"{r.name:26s} {r.description}  [{r.source or 'no paper row'}: {paper}]")


def _apply_overrides(recipe, overrides: list[str]):
    """``recipe`` with each ``SECTION.KEY=VALUE`` of ``--set`` applied: ``model`` (CMAConfig),
    ``loss`` (LossConfig), ``train`` (TrainConfig), ``head`` (HeadSettings; ``head.windows.KEY``:
    ConfidenceSettings). Values are JSON (read strictly), else a bare word as a string."""
    import dataclasses

    from cmagrounding._strict_json import loads
    from cmagrounding.errors import ConfigError
    from cmagrounding.model.config import CMAConfig, LossConfig
    from cmagrounding.training.config import TrainConfig
    from cmagrounding.training.head_config import ConfidenceSettings, HeadSettings

    classes = {"model": CMAConfig, "loss": LossConfig, "train": TrainConfig, "head": HeadSettings,
               "head.windows": ConfidenceSettings}
    values: dict[str, dict] = {"model": dict(recipe.model), "loss": dict(recipe.loss), "train": {}, "head": {},
                               "head.windows": {}}
    for item in overrides:
        key, eq, text = item.partition("=")
        section, dot, name = key.strip().rpartition(".")
        if not eq or not dot or section not in classes:
            raise SystemExit(f"train: --set {item!r}: expected SECTION.KEY=VALUE, SECTION one of {sorted(classes)}")
        cls = classes[section]
        fields = [f.name for f in dataclasses.fields(cls) if not (cls is HeadSettings and f.name == "windows")]
        if name not in fields:
            raise SystemExit(f"train: --set {item!r}: {cls.__name__} has no setting {name!r}; its settings: {fields}")
        try:
            values[section][name] = loads(text.encode(), f"--set {key}", ConfigError)
        except ConfigError:
            values[section][name] = text  # a bare word, e.g. loss.kind=smooth_l1
    try:  # refuse a bad value or combination now, as the run would build them
        head = recipe.head
        if values["head.windows"]:
            head = dataclasses.replace(head, windows=ConfidenceSettings(**{**head.windows.to_dict(), **values["head.windows"]}))
        recipe = recipe.replace(model=values["model"], loss=values["loss"], train=recipe.train.replace(**values["train"]),
                                head=dataclasses.replace(head, **values["head"]))
        if recipe.preset is not None:
            from cmagrounding.model.presets import get_preset

            preset = get_preset(recipe.preset)
            preset.model.replace(**recipe.model), preset.loss.replace(**recipe.loss)
        else:
            CMAConfig.from_dict(recipe.model), LossConfig.from_dict(recipe.loss)
    except (ConfigError, TypeError, ValueError) as e:
        raise SystemExit(f"train: --set {' '.join(overrides)}: {e}") from None
    return recipe


def _check_head_only(args: argparse.Namespace) -> None:
    """Refuse what ``--head-only`` cannot honour (its network is --init's, unchanged), and --init without it."""
    if not args.head_only:
        if args.init:
            raise SystemExit("train: --init is for --head-only (a full run builds its network from the recipe)")
        return
    if not args.init:
        raise SystemExit("train: --head-only needs --init MODEL (the trained pretrained folder)")
    for flag, value in (("--resume", args.resume), ("--videos", args.videos), ("--glove", args.glove),
                        ("--set", args.overrides and any(o.startswith("model.") for o in args.overrides)),
                        ("--video-config", args.video_config), ("--no-head", args.head is False)):
        if value:
            raise SystemExit(f"train: {flag} does not apply to --head-only (the network is --init's, unchanged)")
    if not args.annotations or not args.features:
        raise SystemExit("train: --head-only needs --annotations and --features (the data the head's windows come from)")


def _head_only(args: argparse.Namespace, recipe) -> int:
    """``--head-only``: a confidence head for the trained model ``--init`` (network frozen)."""
    from cmagrounding.training.distributed import init_distributed
    from cmagrounding.training.protocol import run_head_only

    if args.epochs is None:
        recipe = recipe.replace(train=recipe.train.replace(epochs=recipe.head.head_only_epochs))
    output = Path(args.output or f"runs/{recipe.name}-head")
    from cmagrounding._paths import check_output_folder

    check_output_folder("--output", output, inputs={"--annotations": args.annotations, "--features": args.features,
                                                    "--absent": args.absent})
    ctx = init_distributed(recipe.train.device)
    try:
        result = run_head_only(recipe, args.init, output, annotations=args.annotations, features=args.features,
                               absent=args.absent, ctx=ctx)
    finally:
        ctx.close()
    if not ctx.is_main:
        return 0
    card = json.loads((result.model_dir / "config.json").read_text(encoding="utf-8"))
    m = card.get("metrics", {})
    print(f"\nconfidence head for {args.init}: {result.train.epochs_completed} epochs in "
          f"{result.train.train_seconds:.0f} s; network unchanged (max span change {m['head_only']['span_change']:.1e})")
    if m.get("confidence_auroc") is not None:
        print(f"confidence head: AUROC {m['confidence_auroc']:.3f} on {m['confidence_windows']} windows of {m['confidence_split']}")
    print(f"model: {result.model_dir}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.list_recipes:
        _list_recipes()
        return 0
    if not args.recipe:
        raise SystemExit("train: --recipe is required (see --list-recipes)")
    from cmagrounding.training.distributed import init_distributed
    from cmagrounding.training.protocol import run_recipe
    from cmagrounding.training.recipes import get_recipe

    _check_head_only(args)
    recipe = get_recipe(args.recipe)
    changes = {
        "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
        "device": args.device, "amp": args.amp, "num_workers": args.num_workers, "num_threads": args.threads,
        "time_limit": args.time_limit, "log_every": args.log_every,
    }
    train_cfg = recipe.train.replace(**{k: v for k, v in changes.items() if v is not None})
    if args.no_progress:
        train_cfg = train_cfg.replace(progress=False)
    recipe = recipe.replace(train=train_cfg)
    if args.dataset:
        recipe = recipe.replace(dataset=args.dataset, val="val" if args.dataset == "jsonl" and not args.val else recipe.val)
    if args.dataset and args.dataset != get_recipe(args.recipe).dataset:  # the paper's numbers are for its dataset
        recipe = recipe.replace(description=f"{recipe.description}: its settings on {args.dataset} data",
                                paper={}, source="")
    if args.overrides:
        recipe = _apply_overrides(recipe, args.overrides)
    if args.hdf5_key:
        recipe = recipe.replace(hdf5_key=args.hdf5_key)
    if args.val_fraction is not None:
        recipe = recipe.replace(val_fraction=args.val_fraction)
    if args.head is not None:
        recipe = recipe.replace(head=dataclasses.replace(recipe.head, enabled=args.head))
    if args.standardize is not None:
        recipe = recipe.replace(standardize=args.standardize)
    if args.crops is not None:
        if args.crops < 0:
            raise SystemExit(f"train: --crops {args.crops}: must be >= 0")
        recipe = recipe.replace(crops=args.crops)
    if args.head_only:
        return _head_only(args, recipe)

    video_config = None
    features: object = args.features
    if args.video_config:
        from cmagrounding.video.config import VideoConfig

        try:
            from cmagrounding._strict_json import loads
            from cmagrounding.errors import ConfigError

            video_config = VideoConfig.from_dict(loads(Path(args.video_config).read_bytes(), args.video_config, ConfigError))
        except (OSError, ValueError) as e:  # ConfigError is a ValueError
            raise SystemExit(f"train: --video-config {args.video_config}: not a readable VideoConfig JSON file ({e})") from None
    if args.videos:
        from cmagrounding.training.stores import EncoderStore
        from cmagrounding.video.config import VideoConfig
        from cmagrounding.video.encoder import VideoEncoder

        encoder = VideoEncoder(video_config or VideoConfig.for_extractor(args.extractor))
        video_config = encoder.config  # with the checksum of the weights actually loaded
        features = EncoderStore(encoder, video_root=args.videos, cache=args.feature_cache)
    from cmagrounding.errors import ConfigError
    from cmagrounding.training.recipes import require_word_vectors

    try:
        require_word_vectors(recipe, args.glove)
    except ConfigError as e:
        raise SystemExit(f"train: {e}") from None
    if isinstance(features, str) and (args.npz_key or args.l2_normalize or "," in features):
        from cmagrounding.training.stores import open_feature_store

        features = open_feature_store(features, key=recipe.hdf5_key, npz_key=args.npz_key,
                                      l2_normalize=args.l2_normalize)
    if recipe.dataset != "synthetic" and (not args.annotations or features is None):
        raise SystemExit(f"train: recipe {recipe.name!r} needs --annotations and --features (or --videos)")

    output = Path(args.output or f"runs/{recipe.name}")
    from cmagrounding._paths import check_output_folder

    check_output_folder("--output", output, inputs={"--annotations": args.annotations, "--features": args.features,
                                                    "--glove": args.glove, "--video-config": args.video_config,
                                                    "--absent": args.absent})
    ctx = init_distributed(recipe.train.device)
    try:
        result = run_recipe(recipe, output, annotations=args.annotations, features=features, glove=args.glove,
                            resume=args.resume, val=args.val, video_config=video_config, ctx=ctx, absent=args.absent)
    finally:
        ctx.close()
    if not ctx.is_main:
        return 0
    t = result.train
    print(f"\n{recipe.name}: {recipe.description}")
    epochs, kept = f"{t.epochs_completed} epochs", f"best epoch {t.best_epoch}"
    if t.stages:  # two stages (HeadSettings.stage_epochs)
        net, head = t.stages["network"], t.stages["head"]
        epochs += f" ({net['epochs']} of the network, then {head['epochs']} with the confidence head)"
        kept = f"the network's best epoch {net['best_epoch']}"
    print(f"trained {epochs} in {t.train_seconds:.0f} s" + (f" (stopped early: {t.stopped_early})" if t.stopped_early else "")
          + f"; {kept} ({result.val_protocol})")
    print(result.table())
    if recipe.paper:
        print(f"paper: {recipe.source}")
    card = json.loads((result.model_dir / "config.json").read_text(encoding="utf-8")) if result.model_dir else {}
    if card.get("metrics", {}).get("confidence_auroc") is not None:
        print(f"confidence head: AUROC {card['metrics']['confidence_auroc']:.3f} on validation windows")
    if card.get("windows"):
        w = card["windows"]
        print(f"windows: {w['size_seconds']:g} s every {w['stride_seconds']:g} s for videos over {w['when_longer_than']:g} s")
    for name, m in result.baselines.items():
        print(f"query-blind baseline {name}: R1@0.5 {100 * m['R1@0.5']:.2f}, mIoU {100 * m['mIoU']:.2f}")
    print(f"model: {result.model_dir}   log: {output / 'train_log.jsonl'}   result: {output / 'result.json'}")
    return 0
