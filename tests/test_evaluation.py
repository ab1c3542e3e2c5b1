"""Evaluation: parity with the official QVHighlights numbers, the CLI, and hand-computed metric cases."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from univtg_core.evaluation import (
    evaluate_qvhighlights,
    evaluate_recall_benchmark,
    highlight_map,
    load_jsonl,
    recall_at_iou,
    summary_f1,
)
from univtg_core.evaluation.qvhighlights import _interpolated_ap

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures" / "qvhl_eval"


@pytest.fixture(scope="module")
def fixtures() -> Path:
    if not FIXTURES.is_dir():
        pytest.skip(f"QVHighlights eval fixtures not found at {FIXTURES} (they live outside the repo)")
    return FIXTURES


@pytest.fixture(scope="module")
def gt(fixtures: Path) -> list[dict]:
    return load_jsonl(fixtures / "gt.jsonl")


def assert_same_report(ours: dict, official: dict, path: str = "") -> None:
    assert set(ours) == set(official), f"keys differ at {path or 'top level'}: {set(ours) ^ set(official)}"
    for key, expected in official.items():
        where = f"{path}/{key}"
        if isinstance(expected, dict):
            assert isinstance(ours[key], dict), where
            assert_same_report(ours[key], expected, where)
        else:
            assert ours[key] == pytest.approx(expected, abs=1e-2), where


# ------------------------------------------------------------------------------ QVHighlights parity


@pytest.mark.parametrize("name", ["univtg", "momentdetr"])
def test_qvhighlights_matches_official(fixtures: Path, gt: list[dict], name: str) -> None:
    official = json.loads((fixtures / f"{name}_metrics.json").read_text())
    ours = evaluate_qvhighlights(load_jsonl(fixtures / f"{name}.jsonl"), gt)
    assert_same_report(ours, official)
    assert list(ours) == list(official)  # same key order as the official report
    assert list(ours["brief"]) == list(official["brief"])


def test_qvhighlights_ignores_file_order(fixtures: Path, gt: list[dict]) -> None:
    submission = load_jsonl(fixtures / "univtg.jsonl")
    assert evaluate_qvhighlights(submission[::-1], gt) == evaluate_qvhighlights(submission, gt)


def test_qvhighlights_qid_mismatch(fixtures: Path, gt: list[dict]) -> None:
    submission = load_jsonl(fixtures / "univtg.jsonl")[:100]
    with pytest.raises(ValueError, match="100 predicted, 1550 in ground truth, 100 shared"):
        evaluate_qvhighlights(submission, gt)
    report = evaluate_qvhighlights(submission, gt, match_number=False)
    assert set(report) == {
        "brief",
        "HL-min-Fair",
        "HL-min-Good",
        "HL-min-VeryGood",
        "full",
        "long",
        "middle",
        "short",
    }


def test_qvhighlights_hand_case() -> None:
    """One query, two GT windows: greedy one-to-one matching, score-sorted AP, list-order R1."""
    gt = [{"qid": 1, "relevant_windows": [[0, 10], [20, 30]]}]
    # Sorted by score: [1,10] (IoU 0.9 with GT0), [0,10] (IoU 1 with GT0, already taken below 0.95),
    # [20,30] (IoU 1 with GT1). AP = 5/6 at IoU 0.5..0.9 and 2/3 at 0.95; R1 uses the *first listed*.
    submission = [{"qid": 1, "pred_relevant_windows": [[0, 10, 0.5], [1, 10, 0.9], [20, 30, 0.1]]}]
    report = evaluate_qvhighlights(submission, gt)
    assert set(report) == {"brief", "full", "long", "middle", "short"}  # no HL keys without saliency
    full = report["full"]
    assert full["MR-mAP"]["0.5"] == 83.33
    assert full["MR-mAP"]["0.9"] == 83.33
    assert full["MR-mAP"]["0.95"] == 66.67
    assert full["MR-mAP"]["average"] == 81.67
    assert full["MR-R1"]["0.95"] == 100.0
    assert full["MR-mIoU"] == 100.0
    # Both GT windows are 10 s long: "short" holds the query, "middle"/"long" are empty and fall back.
    assert report["short"] == full
    assert report["middle"] == full == report["long"]


def test_qvhighlights_empty_prediction_scores_zero() -> None:
    gt = [{"qid": 1, "relevant_windows": [[0, 10]]}, {"qid": 2, "relevant_windows": [[0, 10]]}]
    submission = [
        {"qid": 1, "pred_relevant_windows": [[0, 10, 1.0]]},
        {"qid": 2, "pred_relevant_windows": []},
    ]
    full = evaluate_qvhighlights(submission, gt)["full"]
    assert full["MR-mAP"]["average"] == 50.0
    assert full["MR-R1"]["0.5"] == 50.0
    assert full["MR-R5"]["0.5"] == 50.0


def test_qvhighlights_skips_hl_when_gt_saliency_is_not_a_list() -> None:
    gt = [
        {
            "qid": 1,
            "relevant_windows": [[0, 10]],
            "duration": 20,
            "relevant_clip_ids": [0],
            "saliency_scores": None,
        }
    ]
    submission = [{"qid": 1, "pred_relevant_windows": [[0, 10, 1.0]], "pred_saliency_scores": [0.1] * 10}]
    report = evaluate_qvhighlights(submission, gt)
    assert not any(key.startswith("HL") for key in [*report, *report["brief"]])
    assert report["full"]["MR-mAP"]["average"] == 100.0


def test_interpolated_ap_groups_tied_scores() -> None:
    labels = np.array([True, False, True, False])
    # Clips 0 and 1 tie: one operating point (P 1/2, R 1/2), then (2/3, 1). Interpolated: 2/3 at both
    # recall steps. Ranking clip by clip instead would give (1 + 2/3) / 2.
    assert _interpolated_ap(labels, np.array([0.9, 0.9, 0.5, 0.1])) == pytest.approx(2 / 3)
    assert _interpolated_ap(labels, np.array([0.9, 0.8, 0.5, 0.1])) == pytest.approx(5 / 6)
    assert _interpolated_ap(np.zeros(3, dtype=bool), np.array([0.1, 0.2, 0.3])) == 0.0
    assert _interpolated_ap(np.ones(3, dtype=bool), np.array([0.1, 0.2, 0.3])) == 1.0


# ------------------------------------------------------------------------------ other benchmarks


def test_recall_at_iou_hand_case() -> None:
    preds = [
        [[0, 10], [20, 30]],  # top-1 IoU 0.4 with the 2nd GT window; the 2nd prediction hits the 1st
        [],  # no prediction: a miss everywhere, IoU 0
        [[0, 5, 0.9]],  # one prediction (a score column is ignored), IoU exactly 0.5; k=5 > 1 prediction
    ]
    gts = [[[20, 30], [0, 4]], [[0, 10]], [[0, 10]]]
    report = recall_at_iou(preds, gts, ks=(1, 5), ious=(0.3, 0.5, 0.7))
    assert report == {
        "R1@0.3": 66.67,
        "R1@0.5": 33.33,
        "R1@0.7": 0.0,
        "R5@0.3": 66.67,
        "R5@0.5": 66.67,
        "R5@0.7": 33.33,
        "mIoU": 30.0,
    }
    assert "mIoU" not in recall_at_iou(preds, gts, miou=False)


def test_recall_at_iou_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="2 queries but GT for 1"):
        recall_at_iou([[[0, 1]], [[0, 1]]], [[[0, 1]]])
    with pytest.raises(ValueError, match="no GT window"):
        recall_at_iou([[[0, 1]]], [[]])


def test_recall_benchmark_records() -> None:
    gt = [{"qid": "a", "relevant_windows": [[0, 10]]}, {"qid": "b", "relevant_windows": [[10, 20]]}]
    sub = [
        {"qid": "b", "pred_relevant_windows": [[0, 5, 0.9], [10, 19, 0.5]]},
        {"qid": "a", "pred_relevant_windows": [[0, 8, 0.9]]},
    ]
    charades = evaluate_recall_benchmark(sub, gt, "charades")
    assert charades == {"R1@0.3": 50.0, "R1@0.5": 50.0, "R1@0.7": 50.0, "mIoU": 40.0}
    mad = evaluate_recall_benchmark(sub, gt, "mad")
    assert list(mad)[:3] == ["R1@0.1", "R1@0.3", "R1@0.5"] and len(mad) == 15
    assert mad["R5@0.5"] == 100.0 and mad["R1@0.5"] == 50.0


def test_highlight_map_youtube_style() -> None:
    # Video 1 ranks [1, 0, 1, 0]: trapezoid AP = 1/2 + 1/2 * (1/2 + 2/3) / 2 = 19/24.
    # Video 2 ties clips 0 and 1: the earlier clip (negative) ranks first, AP = 1 * (0 + 1/2) / 2 = 1/4.
    preds = [[0.9, 0.8, 0.7, 0.1], [0.5, 0.5, 0.2]]
    gts = [[1, 0, 1, 0], [0, 1, 0]]
    assert highlight_map(preds, gts) == round(100 * (19 / 24 + 1 / 4) / 2, 2)


def test_highlight_map_tvsum_top5_style() -> None:
    pred = [0.1, 0.9, 0.8, 0.2, 0.3]  # clip ranking: 1, 2, 4, 3, 0
    # Annotator 0: median 3 -> positives clips 0, 2; ranked labels [0, 1, 0, 0, 1].
    # Annotator 1: median 1 -> positive clip 4 only; ranked labels [0, 0, 1, 0, 0].
    anno = np.array([[5, 1], [1, 1], [4, 1], [3, 1], [2, 5]])
    # top-2: annotator 0 sees [0, 1] and recall counts the positives inside the cut list -> AP 1/4;
    # annotator 1 sees no positive -> 0.
    assert highlight_map([pred], [anno], top_k=2, positive="above_median") == 12.5
    # No cut: annotator 0: 1/2 * (0 + 1/2) / 2 + 1/2 * (1/4 + 2/5) / 2 = 0.2875;
    # annotator 1: 1 * (0 + 1/3) / 2 = 1/6.
    expected = round(100 * (0.2875 + 1 / 6) / 2, 2)
    assert highlight_map([pred], [anno], positive="above_median") == expected
    # k larger than the video: same as no cut.
    assert highlight_map([pred], [anno], top_k=50, positive="above_median") == expected


def test_summary_f1_hand_case() -> None:
    pred = [1, 1, 0, 0, 1, 0]
    users = [
        [1, 1, 1, 0, 0, 0],  # overlap 2: P 2/3, R 2/3, F 2/3
        [0, 0, 0, 0, 0, 1],  # no overlap: F 0
        [1, 0, 0, 0, 1, 0],  # overlap 2: P 2/3, R 1, F 0.8
    ]
    assert summary_f1(pred, users, mode="avg") == pytest.approx(100 * (2 / 3 + 0 + 0.8) / 3)
    assert summary_f1(pred, users, mode="max") == pytest.approx(80.0)
    assert summary_f1([1, 1], [[1, 1, 1, 1]]) == pytest.approx(100 * 2 / 3)  # prediction zero-padded
    assert summary_f1([0, 0, 0], [[1, 0, 0]]) == 0.0  # empty summary
    with pytest.raises(ValueError, match="'avg'"):
        summary_f1(pred, users, mode="mean")


# ------------------------------------------------------------------------------ CLI


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "univtg_core.evaluation", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_prints_brief_and_writes_report(fixtures: Path, tmp_path: Path) -> None:
    out = tmp_path / "metrics.json"
    result = run_cli(
        "--submission", str(fixtures / "univtg.jsonl"), "--gt", str(fixtures / "gt.jsonl"), "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    official = json.loads((fixtures / "univtg_metrics.json").read_text())
    assert json.loads(result.stdout) == official["brief"]
    assert_same_report(json.loads(out.read_text()), official)


def test_cli_missing_file(fixtures: Path, tmp_path: Path) -> None:
    result = run_cli("--submission", str(tmp_path / "absent.jsonl"), "--gt", str(fixtures / "gt.jsonl"))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "absent.jsonl" in lines[0] and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("qid,start,end\n1,0,10\n", "line 1 is not valid JSON"),
        ('[{"qid": 1}]\n', "line 1 is a JSON list"),
        ('{"qid": 1, "pred_relevant_windows": [[0, 1, 1]]}\n', "qids of submission and ground truth differ"),
    ],
)
def test_cli_bad_input(fixtures: Path, tmp_path: Path, content: str, expected: str) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    result = run_cli("--submission", str(bad), "--gt", str(fixtures / "gt.jsonl"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0]
