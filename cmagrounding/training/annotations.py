"""Grounding annotations: Charades-STA, ActivityNet Captions and a JSON Lines format for own data.

Every loader returns an :class:`AnnotationSet`: a list of :class:`Annotation` (one query each,
times in seconds) plus a :class:`QuirkReport` that counts what was repaired. The public releases
have known faults (tabled in docs/training.md, "Annotation quirks"); they are repaired, never
dropped, so the counts stay those of the paper (12,408 / 3,720; 37,421 / 17,505 / 17,031):

* ``start > end`` (4 Charades-STA train rows, 2 ActivityNet train rows): the two times are
  **swapped**. Our choice (the paper and LGI are silent): the annotator clearly marked an
  interval, and swapping keeps its extent, where dropping would change the paper's counts.
* ``end > duration`` (1,805 Charades-STA train rows counting the swapped ones, 562 test;
  29 / 5 / 1 ActivityNet rows, by 0.01 s): ``end`` is **clipped** to the duration, as the
  evaluation convention does (:data:`cmagrounding.spans.IOU_CONVENTION`); we do the same in
  training so that targets stay in [0, 1]. Ends past the duration by float noise only (< 1e-6 s;
  ~230 ActivityNet rows) are clipped without counting.
* ``start >= duration`` (3 Charades-STA train rows, all among the swapped ones): the span lies
  wholly after the video; after clipping it is the zero-length span ``[duration, duration]``. It is
  kept (for the counts) and counted separately.
* ``start < 0``: clipped to 0.

The field's other releases, with the same repair rules applied to every window:

* **QVHighlights** (``highlight_{train,val,test}_release.jsonl``, Moment-DETR's ``data/``): one
  JSON object per query with ``qid``, ``query``, ``duration`` (s), ``vid`` and
  ``relevant_windows`` ``[[start, end], ...]`` in seconds (1-25 per query; 530 of the 1,550 val
  queries have several). Every window is kept (:attr:`Annotation.windows`); scoring compares a
  prediction with the best-matching one (:mod:`cmagrounding.training.window_metrics`). Training
  regresses one span, the first window (CMA has one regression head; Moment-DETR's set loss has
  none to borrow). The test split has no windows (its answers are hidden on CodaLab): it loads for
  predicting, and scoring it is refused by name.
* **TACoS** (2D-TAN's ``train.json`` / ``val.json`` / ``test.json``): ``{video: {"num_frames",
  "fps", "timestamps": [[start_frame, end_frame], ...], "sentences": [...]}}``. As 2D-TAN reads it:
  ``duration = num_frames / fps`` and a moment is ``timestamps / fps`` seconds. Ids keep 2D-TAN's
  ``.avi`` suffix (``s22-d55.avi``); feature stores match them with or without it
  (:func:`cmagrounding.training.stores.id_candidates`), VSLNet's and Lighthouse's files being ``s22-d55``.
  2D-TAN skips rows whose start frame is not before the end frame; here they are repaired by the
  rules above (swapped and counted; a zero-length row kept), so that no query disappears silently.

A repaired row keeps the file's ``(start, end)`` in ``Annotation.raw``: LGI's scoring convention
uses the ground truth unrepaired (:mod:`cmagrounding.training.metrics`; one window per query).

One component: the five formats share the repair rules, their counts and the types.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from cmagrounding._io import jsonl_rows, write_text_atomic
from cmagrounding._strict_json import read as read_json
from cmagrounding.errors import DatasetError, NoGroundTruthError

_logger = logging.getLogger(__name__)

_TOLERANCE = 1e-6  # seconds; an end past the duration by less is float noise, clipped but not counted

__all__ = [
    "Annotation",
    "AnnotationSet",
    "QuirkReport",
    "load_charades_sta",
    "load_activitynet_captions",
    "load_jsonl",
    "save_jsonl",
    "load_annotations",
    "load_qvhighlights",
    "load_tacos",
    "require_windows",
]


@dataclass(frozen=True)
class Annotation:
    """One query: ``video`` id, ``duration`` (s), the ``query`` sentence and its moment (s).

    ``start <= end`` and both lie in ``[0, duration]`` once a loader has repaired the row.
    ``raw``: the ``(start, end)`` the file gave when the loader repaired them (None: unchanged),
    for scoring under LGI's convention (raw ground truth, :mod:`cmagrounding.training.metrics`);
    not part of equality or of :meth:`to_dict`. ``windows`` and ``qid``: see their comments.
    """

    video: str
    duration: float
    query: str
    start: float
    end: float
    raw: tuple[float, float] | None = field(default=None, compare=False, repr=False)
    #: every ground-truth window (s) when the release gives several (QVHighlights: up to 25); empty
    #: for one. ``start``/``end`` are then the first, the training target (CMA regresses one span).
    windows: tuple[tuple[float, float], ...] = ()
    #: the release's query id (QVHighlights ``qid``), matched by Moment-DETR's predictions rows
    qid: int | str | None = None

    @property
    def raw_span(self) -> tuple[float, float]:
        """The ground truth as the annotation file gave it (seconds)."""
        return self.raw if self.raw is not None else (self.start, self.end)

    @property
    def ratio(self) -> float:
        """Length of the moment over the duration of the video (Figure 4 of the paper)."""
        return (self.end - self.start) / self.duration

    @property
    def gt_windows(self) -> tuple[tuple[float, float], ...]:
        """All ground-truth windows (s): ``windows``, or the one ``(start, end)``."""
        return self.windows or ((self.start, self.end),)

    def to_dict(self) -> dict:
        out = {"video": self.video, "duration": self.duration, "query": self.query, "start": self.start,
               "end": self.end}
        if self.windows:  # several windows; single-window rows keep the five keys of the JSON Lines format
            out["windows"] = [list(w) for w in self.windows]
        if self.qid is not None:
            out["qid"] = self.qid
        return out


@dataclass
class QuirkReport:
    """How many rows a loader repaired, by kind (see the module docstring for the rules)."""

    swapped_start_end: int = 0
    clipped_end_to_duration: int = 0
    start_after_duration: int = 0
    clipped_negative_start: int = 0

    def total(self) -> int:
        return (
            self.swapped_start_end
            + self.clipped_end_to_duration
            + self.start_after_duration
            + self.clipped_negative_start
        )

    def merge(self, other: "QuirkReport") -> "QuirkReport":
        return QuirkReport(**{k: getattr(self, k) + getattr(other, k) for k in asdict(self)})

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        return (
            f"swapped start>end: {self.swapped_start_end}, clipped end>duration: "
            f"{self.clipped_end_to_duration} (of which wholly after the video: "
            f"{self.start_after_duration}), clipped start<0: {self.clipped_negative_start}"
        )


@dataclass
class AnnotationSet:
    """The queries of one split, with where they came from and what was repaired."""

    name: str
    split: str
    annotations: list[Annotation]
    quirks: QuirkReport = field(default_factory=QuirkReport)
    sources: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.annotations)

    def __iter__(self) -> Iterator[Annotation]:
        return iter(self.annotations)

    def __getitem__(self, i: int) -> Annotation:
        return self.annotations[i]

    @property
    def videos(self) -> list[str]:
        """Video ids in order of first appearance."""
        return list(dict.fromkeys(a.video for a in self.annotations))

    @property
    def sentences(self) -> list[str]:
        return [a.query for a in self.annotations]

    def mean_ratio(self) -> float:
        """Mean of moment length / video duration (Figure 4: 0.27 Charades-STA, 0.33 ActivityNet)."""
        if not self.annotations:
            raise DatasetError(f"{self.name}/{self.split}: no annotations")
        return sum(a.ratio for a in self.annotations) / len(self.annotations)

    def log_quirks(self) -> None:
        _logger.info(
            "%s/%s: %d queries, %d videos; repaired %s",
            self.name, self.split, len(self), len(self.videos), self.quirks.describe(),
        )

    @staticmethod
    def concat(name: str, split: str, parts: Iterable["AnnotationSet"]) -> "AnnotationSet":
        parts = list(parts)
        quirks = QuirkReport()
        for p in parts:
            quirks = quirks.merge(p.quirks)
        return AnnotationSet(
            name, split, [a for p in parts for a in p], quirks, [s for p in parts for s in p.sources]
        )


def _repair(video: str, duration: float, query: str, start: float, end: float, quirks: QuirkReport,
            where: str) -> Annotation:
    """Apply the repair rules of the module docstring and count them."""
    if not duration > 0:
        raise DatasetError(f"{where}: video {video!r} has a non-positive duration {duration}")
    given = (float(start), float(end))
    if start > end:
        start, end = end, start
        quirks.swapped_start_end += 1
    if start < 0:
        start = 0.0
        quirks.clipped_negative_start += 1
    if end > duration:
        if end > duration + _TOLERANCE:  # beyond float noise of the JSON (e.g. 55.150000000000006)
            quirks.clipped_end_to_duration += 1
            if start >= duration:
                quirks.start_after_duration += 1
        end = duration
        start = min(start, duration)
    repaired = (float(start), float(end))
    return Annotation(video, float(duration), query.strip(), *repaired, raw=given if given != repaired else None)


def _read_charades_durations(csv_path: Path) -> dict[str, float]:
    try:
        with open(csv_path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or "id" not in reader.fieldnames or "length" not in reader.fieldnames:
                raise DatasetError(
                    f"{csv_path}: expected the Charades metadata CSV with columns 'id' and 'length', "
                    f"found {reader.fieldnames}"
                )
            return {row["id"]: float(row["length"]) for row in reader}
    except FileNotFoundError:
        raise DatasetError(f"{csv_path}: Charades metadata CSV not found") from None


def load_charades_sta(annotations: str | Path, durations: str | Path | dict[str, float],
                      split: str | None = None) -> AnnotationSet:
    """Read ``charades_sta_{train,test}.txt`` (``VIDEO START END##sentence`` per line).

    Charades-STA has no durations of its own: ``durations`` is the matching ``Charades_v1_*.csv``
    (column ``length``) or a dict video -> seconds.
    """
    path = Path(annotations)
    if split is None:
        split = "test" if "test" in path.name else "train"
    dur = durations if isinstance(durations, dict) else _read_charades_durations(Path(durations))
    quirks = QuirkReport()
    rows: list[Annotation] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DatasetError(f"{path}: Charades-STA annotation file not found") from None
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        head, sep, sentence = line.partition("##")
        parts = head.split()
        where = f"{path}:{lineno}"
        if not sep or len(parts) != 3:
            raise DatasetError(f"{where}: expected 'VIDEO START END##sentence', got {line!r}")
        video = parts[0]
        try:
            start, end = float(parts[1]), float(parts[2])
        except ValueError:
            raise DatasetError(f"{where}: start/end are not numbers in {line!r}") from None
        if video not in dur:
            raise DatasetError(f"{where}: video {video!r} has no duration in the Charades CSV")
        rows.append(_repair(video, dur[video], sentence, start, end, quirks, where))
    sources = [str(path)] + ([] if isinstance(durations, dict) else [str(durations)])  # the CSV is read too
    out = AnnotationSet("charades-sta", split, rows, quirks, sources)
    out.log_quirks()
    return out


def load_activitynet_captions(paths: str | Path | Iterable[str | Path], split: str | None = None) -> AnnotationSet:
    """Read ActivityNet Captions JSON file(s): ``{video: {duration, timestamps, sentences}}``.

    Several files are concatenated in the order given; the paper's test split is
    ``[val_1.json, val_2.json]`` (34,536 queries), as in LGI.
    """
    path_list = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    if split is None:
        split = "+".join(p.stem for p in path_list)
    quirks = QuirkReport()
    rows: list[Annotation] = []
    for path in path_list:
        data = read_json(path, DatasetError, "ActivityNet Captions file")
        if not isinstance(data, dict):
            raise DatasetError(f"{path}: expected an object of videos, got {type(data).__name__}")
        for video, item in data.items():
            where = f"{path}[{video!r}]"
            try:
                duration, stamps, sentences = item["duration"], item["timestamps"], item["sentences"]
            except (KeyError, TypeError):
                raise DatasetError(f"{where}: needs 'duration', 'timestamps' and 'sentences'") from None
            if len(stamps) != len(sentences):
                raise DatasetError(f"{where}: {len(stamps)} timestamps but {len(sentences)} sentences")
            for (start, end), sentence in zip(stamps, sentences):
                rows.append(_repair(video, float(duration), sentence, float(start), float(end), quirks, where))
    out = AnnotationSet("activitynet-captions", split, rows, quirks, [str(p) for p in path_list])
    out.log_quirks()
    return out


def load_jsonl(path: str | Path, name: str | None = None, split: str | None = None,
               durations: Mapping[str, float] | None = None) -> AnnotationSet:
    """Read the JSON Lines format for own data: one object per line with keys
    ``video`` (id or path of the video), ``duration``, ``query``, ``start``, ``end`` (seconds);
    optionally ``windows`` ``[[start, end], ...]`` when a query has several ground-truth windows
    (``start``/``end`` then default to the first; scoring uses the best-matching one).

    ``duration`` may be left out of a row when ``durations`` (video id -> seconds, e.g. what
    ``cmagrounding extract-features`` recorded: :func:`cmagrounding.training.stores.recorded_durations`)
    has the video; a row's own ``duration`` wins."""
    path = Path(path)
    quirks = QuirkReport()
    rows: list[Annotation] = []
    for where, obj in jsonl_rows(path, DatasetError, "annotation file"):
        if not isinstance(obj, dict):
            raise DatasetError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        windows = obj.get("windows")
        if windows is not None:  # several ground-truth windows; start/end default to the first
            if (not isinstance(windows, list) or not windows
                    or not all(isinstance(w, list) and len(w) == 2 for w in windows)):
                raise DatasetError(f"{where}: 'windows' must be a non-empty list of [start, end]")
            obj = {"start": windows[0][0], "end": windows[0][1], **obj}
        missing = [k for k in ("video", "duration", "query", "start", "end") if k not in obj]
        if missing == ["duration"] and durations is not None and str(obj["video"]) in durations:
            obj = {**obj, "duration": durations[str(obj["video"])]}  # as the feature extraction measured it
            missing = []
        if missing:
            hint = (" (and the features record no duration for this video)" if "duration" in missing
                    and durations is not None else "")
            raise DatasetError(f"{where}: missing keys {missing}{hint}")
        if not isinstance(obj["query"], str) or not obj["query"].strip():
            raise DatasetError(f"{where}: 'query' must be a non-empty string")
        try:
            duration, start, end = float(obj["duration"]), float(obj["start"]), float(obj["end"])
            spans = [(float(w[0]), float(w[1])) for w in windows] if windows is not None else []
        except (TypeError, ValueError, OverflowError):
            raise DatasetError(f"{where}: duration/start/end/windows must be numbers") from None
        a = _repair(str(obj["video"]), duration, obj["query"], start, end, quirks, where)
        if len(spans) > 1:  # the first window is ``a`` (counted); the others are repaired and counted too
            others = [_repair(a.video, duration, a.query, s, e, quirks, where) for s, e in spans[1:]]
            fixed = ((a.start, a.end),) + tuple((r.start, r.end) for r in others)
            a = Annotation(a.video, a.duration, a.query, a.start, a.end, raw=a.raw, windows=fixed, qid=obj.get("qid"))
        elif obj.get("qid") is not None:
            a = Annotation(a.video, a.duration, a.query, a.start, a.end, raw=a.raw, qid=obj["qid"])
        rows.append(a)
    out = AnnotationSet(name or path.stem, split or path.stem, rows, quirks, [str(path)])
    out.log_quirks()
    return out


def save_jsonl(annotations: Iterable[Annotation], path: str | Path) -> None:
    """Write annotations in the JSON Lines format that :func:`load_jsonl` reads."""
    write_text_atomic(path, "".join(json.dumps(a.to_dict()) + "\n" for a in annotations))


def _number(value: Any, what: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DatasetError(f"{where}: {what} must be a number, got {value!r}")
    return float(value)


def load_qvhighlights(path: str | Path, split: str | None = None) -> AnnotationSet:
    """Read a QVHighlights release file (one query per line; see the module docstring).

    A row without ``relevant_windows`` (the test split) becomes an annotation with the zero-length
    span ``[0, 0]`` and no windows; the set is named ``qvhighlights`` and ``split`` (default from the
    file name). :func:`require_windows` refuses to score such a set.
    """
    path = Path(path)
    if split is None:
        split = next((s for s in ("train", "val", "test") if f"_{s}_" in path.name), path.stem)
    quirks = QuirkReport()
    rows: list[Annotation] = []
    for where, obj in jsonl_rows(path, DatasetError, "QVHighlights release file"):
        if not isinstance(obj, dict):
            raise DatasetError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        missing = [k for k in ("qid", "query", "duration", "vid") if k not in obj]
        if missing:
            raise DatasetError(f"{where}: missing keys {missing} (a QVHighlights row has qid, query, "
                               "duration, vid, relevant_windows)")
        if not isinstance(obj["query"], str) or not obj["query"].strip():
            raise DatasetError(f"{where}: 'query' must be a non-empty string")
        duration = _number(obj["duration"], "duration", where)
        raw = obj.get("relevant_windows")
        if raw is None:  # the test split: no ground truth published
            if not duration > 0:
                raise DatasetError(f"{where}: video {obj['vid']!r} has a non-positive duration {duration}")
            rows.append(Annotation(str(obj["vid"]), duration, obj["query"].strip(), 0.0, 0.0, qid=obj["qid"]))
            continue
        if not isinstance(raw, list) or not raw:
            raise DatasetError(f"{where}: 'relevant_windows' must be a non-empty list of [start, end]")
        repaired = []
        for i, w in enumerate(raw):
            if not isinstance(w, list) or len(w) != 2:
                raise DatasetError(f"{where}: relevant_windows[{i}] must be [start, end], got {w!r}")
            repaired.append(_repair(str(obj["vid"]), duration, obj["query"], _number(w[0], "a window start", where),
                                    _number(w[1], "a window end", where), quirks, where))
        first = repaired[0]  # the training target; its raw span is LGI's ground truth
        windows = tuple((a.start, a.end) for a in repaired) if len(repaired) > 1 else ()
        rows.append(Annotation(first.video, first.duration, first.query, first.start, first.end, raw=first.raw,
                               windows=windows, qid=obj["qid"]))
    out = AnnotationSet("qvhighlights", split, rows, quirks, [str(path)])
    out.log_quirks()
    return out


def require_windows(annotations: Any) -> None:
    """Raise :class:`NoGroundTruthError` when ``annotations`` has no ground truth to score against."""
    if getattr(annotations, "name", "") == "qvhighlights" and getattr(annotations, "split", "") == "test":
        raise NoGroundTruthError(
            f"{', '.join(getattr(annotations, 'sources', [])) or 'qvhighlights/test'}: the QVHighlights test "
            "split has no ground-truth windows (its answers are hidden; submit predictions to the "
            "benchmark's server); score --split val instead")


def load_tacos(path: str | Path, split: str | None = None) -> AnnotationSet:
    """Read 2D-TAN's TACoS JSON (frames and ``fps``; see the module docstring) as seconds."""
    path = Path(path)
    if split is None:
        split = path.stem
    data = read_json(path, DatasetError, "TACoS annotation file")
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected an object of videos (2D-TAN's TACoS JSON), got {type(data).__name__}")
    quirks = QuirkReport()
    rows: list[Annotation] = []
    for video, item in data.items():
        where = f"{path}[{video!r}]"
        try:
            frames, fps, stamps, sentences = item["num_frames"], item["fps"], item["timestamps"], item["sentences"]
        except (KeyError, TypeError):
            raise DatasetError(f"{where}: needs 'num_frames', 'fps', 'timestamps' and 'sentences' "
                               "(2D-TAN's TACoS layout)") from None
        fps = _number(fps, "fps", where)
        if not fps > 0:
            raise DatasetError(f"{where}: fps must be positive, got {fps}")
        duration = _number(frames, "num_frames", where) / fps
        if not isinstance(stamps, list) or not isinstance(sentences, list) or len(stamps) != len(sentences):
            raise DatasetError(f"{where}: 'timestamps' and 'sentences' must be lists of the same length")
        for i, (stamp, sentence) in enumerate(zip(stamps, sentences)):
            if not isinstance(stamp, list) or len(stamp) != 2 or not isinstance(sentence, str):
                raise DatasetError(f"{where}: timestamps[{i}] must be [start_frame, end_frame] with a sentence")
            start = _number(stamp[0], "a start frame", where) / fps
            end = _number(stamp[1], "an end frame", where) / fps
            rows.append(_repair(video, duration, sentence, start, end, quirks, where))
    out = AnnotationSet("tacos", split, rows, quirks, [str(path)])
    out.log_quirks()
    return out


# Files that make up each split of the public datasets, relative to their folder.
_LAYOUT = {
    "charades-sta": {
        "train": (("charades_sta_train.txt",), "Charades_v1_train.csv"),
        "test": (("charades_sta_test.txt",), "Charades_v1_test.csv"),
    },
    "activitynet-captions": {
        "train": (("train.json",), None),
        "val_1": (("val_1.json",), None),
        "val_2": (("val_2.json",), None),
        "test": (("val_1.json", "val_2.json"), None),  # the paper's test split (LGI): merged
    },
}
#: files of each split of the field's releases, relative to the dataset's folder
RELEASE_FILES = {
    "qvhighlights": {s: f"highlight_{s}_release.jsonl" for s in ("train", "val", "test")},
    "tacos": {s: f"{s}.json" for s in ("train", "val", "test")},
}
# ActivityNet Captions as 2D-TAN names its files (the same content: val_1 -> val, val_2 -> test)
_TWO_D_TAN_NAMES = {"val_1.json": "val.json", "val_2.json": "test.json"}


def load_annotations(dataset: str, root: str | Path, split: str,
                     durations: Mapping[str, float] | None = None) -> AnnotationSet:
    """Load ``split`` of a public ``dataset`` ("charades-sta", "activitynet-captions", "qvhighlights",
    "tacos") from the folder ``root`` holding its original files
    (ActivityNet also with 2D-TAN's names ``val.json`` / ``test.json`` for ``val_1`` / ``val_2``);
    with ``dataset == "jsonl"``, ``root`` is a folder
    of ``<split>.jsonl`` files (``train.jsonl``, ``val.jsonl``, ``test.jsonl``) or one file, and
    ``durations`` fills rows without a ``duration`` (:func:`load_jsonl`)."""
    if dataset == "jsonl":  # a .jsonl file, or a folder of <split>.jsonl files
        path = Path(root)
        return load_jsonl(path / f"{split}.jsonl" if path.is_dir() else path, split=split, durations=durations)
    if dataset in ("qvhighlights", "tacos"):  # the field's releases (Moment-DETR's, 2D-TAN's)
        names = RELEASE_FILES[dataset]
        if split not in names:
            raise DatasetError(f"{dataset} has no split {split!r}; expected one of {sorted(names)}")
        path = Path(root)
        path = path / names[split] if path.is_dir() else path
        if not path.is_file():
            raise DatasetError(f"{path}: missing the {dataset} {split} file {names[split]}")
        load = load_qvhighlights if dataset == "qvhighlights" else load_tacos
        return load(path, split=split)
    if dataset not in _LAYOUT:
        raise DatasetError(f"unknown dataset {dataset!r}; expected one of "
                           f"{sorted([*_LAYOUT, 'qvhighlights', 'tacos'])} or 'jsonl'")
    if split not in _LAYOUT[dataset]:
        raise DatasetError(f"{dataset} has no split {split!r}; expected one of {sorted(_LAYOUT[dataset])}")
    root = Path(root)
    files, csv_name = _LAYOUT[dataset][split]
    if dataset == "activitynet-captions" and not all((root / n).is_file() for n in files):
        # 2D-TAN ships the same files as train.json, val.json (= val_1) and test.json (= val_2)
        renamed = tuple(_TWO_D_TAN_NAMES.get(n, n) for n in files)
        if all((root / n).is_file() for n in renamed):
            files = renamed
    missing = [n for n in (*files, csv_name) if n and not (root / n).is_file()]
    if missing:
        raise DatasetError(f"{root}: missing {missing} for {dataset}/{split}")
    if dataset == "charades-sta":
        return load_charades_sta(root / files[0], root / csv_name, split=split)
    return load_activitynet_captions([root / n for n in files], split=split)
