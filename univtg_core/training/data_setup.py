"""Building a run's data from the options: annotations checked, feature files checked before any training,
feature widths and clip length read from the files, and the datasets the architecture's recipe makes."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from typing import Any

from torch.utils.data import Dataset

from .data import DataError, FeatureStore, check_records, infer_clip_length, load_jsonl, raise_if_missing
from .options import finalize_dims
from .recipes import TrainingRecipe

logger = logging.getLogger(__name__)


@dataclass
class RunData:
    """The annotations, the feature store and the datasets of one run; `saved_options` is opt.json's content."""

    train_records: list[dict]
    eval_records: list[dict] | None
    store: FeatureStore
    train_dataset: Dataset
    eval_dataset: Dataset | None
    saved_options: dict[str, Any]
    clip_feat_dir: str | None = None
    eval_labelled: bool = False  # every eval record has ground truth: the run is ranked by --main_metric


def _records(opt: argparse.Namespace) -> tuple[list[dict], list[dict] | None]:
    train_records: list[dict] = []
    for path in opt.train_path or []:
        records = load_jsonl(path)
        check_records(records, path, need_labels=not opt.language_free, need_qid=not opt.language_free)
        train_records += records
    if opt.data_ratio != 1:
        train_records = train_records[: int(len(train_records) * opt.data_ratio)]
    eval_records = load_jsonl(opt.eval_path) if opt.eval_path else None
    if eval_records is not None:
        check_records(eval_records, opt.eval_path, need_labels=False)
        if opt.data_ratio != 1:
            eval_records = eval_records[: int(len(eval_records) * opt.data_ratio)]
    if not train_records:
        raise DataError("no training annotations: pass --train_path")
    return train_records, eval_records


def _widths(opt: argparse.Namespace, store: FeatureStore, first: dict,
            eval_records: list[dict] | None) -> tuple[int, int | None, str | None]:
    """Video and text feature widths (and the language-free candidates' folder), checked against the options."""
    vid = str(first["vid"])
    video_dim = store.video(vid).shape[1] if opt.use_video else 0
    query_field = "pooler_output" if opt.language_free else "last_hidden_state"
    text_source = first if not opt.language_free else (eval_records or [None])[0]
    text_dim = None
    if text_source is not None:
        text_dim = store.query(text_source["qid"], query_field, text_source.get("t_feat_dir")).shape[1]
    clip_feat_dir = None
    if opt.language_free:
        from .language_free import pick_clip_feature_dir

        if text_dim is None:
            text_dim = store.read_video_dir((opt.lf_feat_dir or opt.v_feat_dirs[0]), vid).shape[1]
        clip_feat_dir = pick_clip_feature_dir(opt.v_feat_dirs, text_dim, store, vid, opt.lf_feat_dir)
        lf_width = store.read_video_dir(clip_feat_dir, vid).shape[1]
        if lf_width != text_dim:
            raise DataError(f"--lf_feat_dir {clip_feat_dir} features are {lf_width} wide but the query "
                            f"sentence features are {text_dim}: they must share CLIP's embedding space")
    for name, found in (("v_feat_dim", video_dim), ("t_feat_dim", text_dim)):
        given = getattr(opt, name)
        if given is not None and given != found:
            raise DataError(f"--{name} {given} does not match the feature files ({found} wide, e.g. "
                            f"{'video ' + vid if name == 'v_feat_dim' else 'query'})")
    return video_dim, text_dim, clip_feat_dir


def _clip_length(opt: argparse.Namespace, records: list[dict], store: FeatureStore) -> float:
    if opt.clip_length is not None:
        return opt.clip_length
    clip_length = infer_clip_length(records, store) if opt.use_video else None
    if clip_length is None:
        logger.warning("no durations to read the clip length from: using UniVTG's default 1 s (pass --clip_length)")
        return 1.0
    logger.info("clip length %.3g s (from durations / feature rows; pass --clip_length to force)", clip_length)
    return clip_length


def setup_data(opt: argparse.Namespace, recipe: TrainingRecipe, progress: bool = True) -> RunData:
    """Everything the loop reads. Fills the data-derived options (widths, clip length) on `opt`."""
    train_records, eval_records = _records(opt)
    store = FeatureStore(opt.v_feat_dirs or [], opt.t_feat_dir, normalize_video=not opt.no_norm_vfeat,
                         normalize_text=not opt.no_norm_tfeat, cache_mb=opt.cache_mb)
    raise_if_missing(store, train_records, ", ".join(opt.train_path), queries=not opt.language_free)
    if eval_records is not None:
        raise_if_missing(store, eval_records, opt.eval_path)
    if opt.language_free and recipe.query_arguments is None:
        raise DataError(f"--language_free is not available for --model_id {recipe.architecture}")

    video_dim, text_dim, clip_feat_dir = _widths(opt, store, train_records[0], eval_records)
    saved_options = finalize_dims(opt, video_dim, text_dim, _clip_length(opt, train_records, store))
    if opt.use_cache > 0:
        store.preload(train_records, queries=not opt.language_free, progress=progress)
        if eval_records is not None:
            store.preload(eval_records, progress=progress)

    train_dataset = recipe.make_dataset(train_records, store, opt, train=True, clip_feat_dir=clip_feat_dir)
    eval_dataset, labelled = None, False
    if eval_records is not None:
        labelled = all(r.get("relevant_windows") for r in eval_records)
        eval_dataset = recipe.make_dataset(
            eval_records, store, opt, train=False, load_labels=labelled,
            query_field="pooler_output" if opt.language_free else "last_hidden_state")
    return RunData(train_records, eval_records, store, train_dataset, eval_dataset, saved_options, clip_feat_dir,
                   labelled)
