"""MESM's Charades-STA / TACoS report against the official eval_submission output (metric_toy.json)."""

from __future__ import annotations

import json

import pytest
from conftest import shared_fixture

from univtg_core.evaluation.charades import evaluate_moment_retrieval


def test_metric_toy_reproduced_exactly():
    toy = json.loads((shared_fixture("mesm_reference") / "metric_toy.json").read_text())
    report = evaluate_moment_retrieval(toy["submission"], toy["ground_truth"], dataset="charades")
    assert json.loads(json.dumps(report)) == toy["metrics"]
    assert list(report) == list(toy["metrics"]) and list(report["brief"]) == list(toy["metrics"]["brief"])


def test_tacos_thresholds_buckets_and_empty_buckets():
    submission = [{"qid": 1, "pred_relevant_windows": [[0, 200, 0.9], [0, 100, 0.5]]},
                  {"qid": 2, "pred_relevant_windows": [[10, 14, 0.8]]}]
    truth = [{"qid": 1, "relevant_windows": [[0, 190]]}, {"qid": 2, "relevant_windows": [[10, 15]]}]
    report = evaluate_moment_retrieval(submission, truth, dataset="tacos")
    assert list(report["full"]["MR-R1"]) == ["0.1", "0.3", "0.5", "0.7", "miou"]
    assert set(report) == {"brief", "full", "superlong", "short"}
    assert report["brief"]["MR-middle-mAP"] is None and report["brief"]["MR-long-mAP"] is None
    assert report["superlong"]["MR-R1"]["miou"] == 95.0 and report["short"]["MR-R1"]["miou"] == 80.0
    assert report["full"]["MR-R1"]["0.7"] == 100.0 and report["full"]["MR-R1"]["miou"] == 87.5
    with pytest.raises(ValueError, match="qids"):
        evaluate_moment_retrieval(submission[:1], truth)
    with pytest.raises(ValueError, match="unknown dataset"):
        evaluate_moment_retrieval(submission, truth, dataset="mad")
