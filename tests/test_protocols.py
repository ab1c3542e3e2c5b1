"""MAD and Ego4D-NLQ protocols on hand-made cases whose answers are worked out below, and the eval CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from univtg_core.evaluation import (
    ego4d_clip_offsets,
    ego4d_submission,
    evaluate_ego4d,
    evaluate_mad,
    evaluate_recall_benchmark,
    mad_nms,
)
from univtg_core.evaluation.cli import main
from univtg_core.evaluation.ego4d import split_qid

# ------------------------------------------------------------------ MAD

MAD_GT = [
    {"qid": "1", "relevant_windows": [[10, 20]]},
    {"qid": "2", "relevant_windows": [[50, 60]]},
    {"qid": "3", "relevant_windows": [[0, 10]]},
]
MAD_PREDS = [
    # q1, by score: a [0, 9] IoU(GT) 0 -> kept.
    #   b [1, 10]: IoU with a = 8 / 10 = 0.8 > 0.3 -> suppressed.
    #   c [12, 20]: IoU with a = 0 -> kept; IoU(GT) = 8 / 10 = 0.8.
    #   d [10, 30]: IoU with c = 8 / 20 = 0.4 > 0.3 -> suppressed (its IoU(GT) 0.5 never counts).
    #   e [14, 40]: IoU with c = 6 / 28 = 0.21 <= 0.3 -> kept; IoU(GT) = 6 / 30 = 0.2.
    #   Ranked after NMS: a, c, e -> R1 misses everything, R5 has 0.8: a hit at 0.1, 0.3 and 0.5.
    {"qid": "1", "pred_relevant_windows": [[0, 9, 0.9], [1, 10, 0.8], [12, 20, 0.7], [10, 30, 0.6], [14, 40, 0.5]]},
    # q2, listed out of order: sorted by score, f [0, 10] comes first, then five windows that overlap it by
    # IoU 9/11, 8/12, 7/13, 6/14, 5/15 (0.82 ... 0.33 > 0.3): all suppressed; then h [50, 58] (IoU(GT) 0.8).
    # After NMS h is 2nd -> R1 misses, R5 hits at all thresholds. Without NMS h would be 7th: R5 misses.
    {"qid": "2", "pred_relevant_windows": [[50, 58, 0.1], [0, 10, 0.9], [1, 11, 0.8], [2, 12, 0.7], [3, 13, 0.6],
                                           [4, 14, 0.5], [5, 15, 0.4]]},
    # q3: [0, 5] against [0, 10] has IoU exactly 5 / 10 = 0.5, and MAD counts IoU >= t: R1 hits at 0.5 too.
    {"qid": "3", "pred_relevant_windows": [[0, 5, 1.0]]},
]


def test_mad_nms_suppresses_above_the_threshold_only():
    windows = np.array([[0, 9], [1, 10], [12, 20], [10, 30], [14, 40]], dtype=float)
    assert mad_nms(windows, np.array([0.9, 0.8, 0.7, 0.6, 0.5])).tolist() == [0, 2, 4]
    # [0, 10] and [5, 15]: IoU 5 / 15 = 1/3. At threshold 1/3 it is not *above*: both stay.
    assert mad_nms([[0, 10], [5, 15]], None, threshold=1 / 3).tolist() == [0, 1]
    assert mad_nms([[0, 10], [5, 15]], None, threshold=0.3).tolist() == [0]
    assert mad_nms(windows, None, threshold=None, top_k=2).tolist() == [0, 1]


def test_mad_recall_hand_case():
    report = evaluate_mad(MAD_PREDS, MAD_GT)
    assert list(report) == [f"R{k}@{t}" for k in (1, 5, 10, 50, 100) for t in (0.1, 0.3, 0.5)]
    # R1: only q3 (IoU 0.5) -> 1/3 at every threshold. R5 and above: q1 (0.8), q2 (0.8), q3 (0.5) -> 3/3.
    assert report["R1@0.1"] == report["R1@0.3"] == report["R1@0.5"] == 33.33
    assert all(report[f"R{k}@{t}"] == 100.0 for k in (5, 10, 50, 100) for t in (0.1, 0.3, 0.5))
    # Without NMS, q1 ranks a, b, c, ... (c is 3rd, still a hit at R5) but q2's h is 7th: R5 = 2/3, R10 = 3/3.
    plain = evaluate_mad(MAD_PREDS, MAD_GT, nms_threshold=None)
    assert plain["R1@0.5"] == 33.33 and plain["R5@0.1"] == plain["R5@0.5"] == 66.67 and plain["R10@0.5"] == 100.0
    assert evaluate_recall_benchmark(MAD_PREDS, MAD_GT, "mad") == report


# ------------------------------------------------------------------ Ego4D-NLQ

EGO4D_GT = [
    {"qid": "ann-1_0", "vid": "clip-A", "relevant_windows": [[30.5, 40.0]]},
    {"qid": "ann-1_2", "vid": "clip-A", "relevant_windows": [[200.0, 210.0]]},
    {"qid": "ann-2_0", "vid": "clip-B", "relevant_windows": [[0.0, 4.0]]},
]
EGO4D_PREDS = [
    # q1: [30.5, 35.25] has IoU 4.75 / 9.5 = 0.5 exactly: a hit at 0.3, *not* at 0.5 (Ego4D counts IoU > t).
    #     [30, 40] has IoU 9.5 / 10 = 0.95: R5 hits at 0.5.
    {"qid": "ann-1_0", "vid": "clip-A", "pred_relevant_windows": [[30.5, 35.25, 0.9], [30, 40, 0.8]]},
    # q2: [0, 10] misses (IoU 0); [205, 215] has IoU 5 / 15 = 0.33: R5 hits at 0.3 only.
    {"qid": "ann-1_2", "vid": "clip-A", "pred_relevant_windows": [[0, 10, 0.7], [205, 215, 0.6]]},
    # q3: no prediction: a miss everywhere, IoU 0.
    {"qid": "ann-2_0", "vid": "clip-B", "pred_relevant_windows": []},
]


def test_ego4d_recall_and_miou_hand_case():
    report = evaluate_ego4d(EGO4D_PREDS, EGO4D_GT)
    assert report == {
        "R1@0.3": 33.33,  # q1 (0.5 > 0.3)
        "R1@0.5": 0.0,  # 0.5 is not > 0.5
        "R5@0.3": 66.67,  # q1, q2 (0.33 > 0.3)
        "R5@0.5": 33.33,  # q1 (0.95)
        "mIoU": 16.67,  # top-1 IoUs (0.5 + 0 + 0) / 3
    }
    assert evaluate_recall_benchmark(EGO4D_PREDS, EGO4D_GT, "ego4d") == report


def test_ego4d_submission_format(tmp_path):
    nlq = {"version": "1", "videos": [{"video_uid": "v", "clips": [
        {"clip_uid": "clip-A", "clip_start_sec": 100.0, "clip_end_sec": 580.0, "annotations": []},
        {"clip_uid": "clip-B", "clip_start_sec": 0.0, "clip_end_sec": 480.0, "annotations": []}]}]}
    (tmp_path / "nlq_test.json").write_text(json.dumps(nlq))
    offsets = ego4d_clip_offsets(tmp_path / "nlq_test.json")
    assert offsets == {"clip-A": 100.0, "clip-B": 0.0}
    preds = [dict(EGO4D_PREDS[0], pred_relevant_windows=[[i, i + 1, 1 - i / 10] for i in range(8)]),
             {k: v for k, v in EGO4D_PREDS[2].items() if k != "vid"}]
    challenge = ego4d_submission(preds, EGO4D_GT, offsets)
    assert challenge == {"version": "1.0", "challenge": "ego4d_nlq_challenge", "results": [
        {"clip_uid": "clip-A", "annotation_uid": "ann-1", "query_idx": 0,
         "predicted_times": [[100.0 + i, 101.0 + i] for i in range(5)]},  # top 5, times back in clip-A's frame
        {"clip_uid": "clip-B", "annotation_uid": "ann-2", "query_idx": 0, "predicted_times": []},  # vid from GT
    ]}
    assert split_qid("3f1b-9a_c2_12") == ("3f1b-9a_c2", 12)
    with pytest.raises(ValueError, match="not an Ego4D query id"):
        split_qid(7)
    with pytest.raises(ValueError, match="has no 'vid'"):
        ego4d_submission(preds[1:])


# ------------------------------------------------------------------ CLI


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def test_cli_mad_and_ego4d(tmp_path, capsys):
    sub, gt = write_jsonl(tmp_path / "mad_preds.jsonl", MAD_PREDS), write_jsonl(tmp_path / "mad.jsonl", MAD_GT)
    assert main(["--metrics", "mad", "--submission", sub, "--gt", gt, "--out", str(tmp_path / "m.json")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((tmp_path / "m.json").read_text()) == evaluate_mad(MAD_PREDS, MAD_GT)
    assert main(["--metrics", "mad", "--submission", sub, "--gt", gt, "--nms_thresh", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["R5@0.5"] == 66.67  # NMS off, as worked out above

    sub, gt = write_jsonl(tmp_path / "ego_preds.jsonl", EGO4D_PREDS), write_jsonl(tmp_path / "ego.jsonl", EGO4D_GT)
    out = tmp_path / "challenge.json"
    assert main(["--metrics", "ego4d", "--submission", sub, "--gt", gt, "--ego4d_submission", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["R1@0.3"] == 33.33
    assert json.loads(out.read_text())["challenge"] == "ego4d_nlq_challenge"
    # The test split has no GT: writing the submission alone needs none.
    out.unlink()
    assert main(["--metrics", "ego4d", "--submission", sub, "--ego4d_submission", str(out)]) == 0
    assert len(json.loads(out.read_text())["results"]) == 3


def test_cli_default_is_still_qvhighlights(tmp_path, capsys):
    gt = write_jsonl(tmp_path / "gt.jsonl", [{"qid": 1, "relevant_windows": [[0, 10]]}])
    sub = write_jsonl(tmp_path / "sub.jsonl", [{"qid": 1, "pred_relevant_windows": [[0, 10, 0.5]]}])
    assert main(["--submission", sub, "--gt", gt]) == 0
    assert json.loads(capsys.readouterr().out)["MR-full-R1@0.5-key"] == 100.0


@pytest.mark.parametrize(("args", "expected"), [
    (["--metrics", "ego4d", "--gt", "GT"], "error: qid 1 is not an Ego4D query id"),
    (["--metrics", "mad", "--gt", "MISSING"], "error: cannot open"),
    (["--metrics", "mad"], "error: --gt is required"),
    (["--metrics", "mad", "--gt", "GT", "--ego4d_submission", "x.json"], "error: --ego4d_submission and"),
    (["--metrics", "mad", "--gt", "GT", "--nms_thresh", "2"], "error: --nms_thresh must lie in [0, 1]"),
])
def test_cli_bad_input_is_one_error_line_and_exit_2(tmp_path, capsys, args, expected):
    gt = write_jsonl(tmp_path / "gt.jsonl", [{"qid": 1, "relevant_windows": [[0, 10]]}])
    sub = write_jsonl(tmp_path / "sub.jsonl", [{"qid": 1, "pred_relevant_windows": [[0, 10, 0.5]]}])
    args = [{"GT": gt, "MISSING": str(tmp_path / "absent.jsonl")}.get(a, a) for a in args]
    args += ["--ego4d_submission", str(tmp_path / "c.json")] if args[1] == "ego4d" else []
    try:
        code = main(["--submission", sub, *args])
    except SystemExit as exc:  # argparse's own errors: usage plus one error line, exit 2
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert [line for line in err.splitlines() if line.startswith("error:") or ": error:" in line] != []
    assert expected.removeprefix("error: ") in err
