"""Converters from Charades-STA, TACoS, ActivityNet Captions and Ego4D-NLQ into the trainer's jsonl."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from univtg_core.training.converters import (
    convert,
    convert_anet,
    convert_charades,
    convert_ego4d,
    convert_mad,
    convert_tacos,
)
from univtg_core.training.data import DataError

REPO = Path(__file__).resolve().parents[1]

CHARADES_TXT = """AO8RW 0.0 6.9##a person is putting a book on a shelf.
AO8RW 3.2 40.0##person begins to play on a phone.

Y6R7T 11.1 18.7##a person opens a closet door.
"""
CHARADES_CSV = """id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length
AO8RW,P1,Kitchen,6,7,Yes,x,y,z,w,33.67
Y6R7T,P2,Bedroom,6,7,Yes,x,y,z,w,24.00
"""
TACOS = {"s13-d21.avi": {"num_frames": 3000, "fps": 30.0, "timestamps": [[150, 600], [900, 3300]],
                         "sentences": ["The person washes the carrot.", "He cuts it."]}}
ANET = {"v_QOlSCBRmfWY": {"duration": 82.73, "timestamps": [[0.83, 19.86], [17.37, 60.81]],
                          "sentences": ["A young woman is seen standing.", " She then dances."]}}
EGO4D = {"version": "1", "videos": [{"video_uid": "vid-1", "clips": [{
    "clip_uid": "clip-A", "video_start_sec": 100.0, "video_end_sec": 580.0, "clip_start_sec": 100.0,
    "clip_end_sec": 580.0, "annotations": [{"annotation_uid": "ann-1", "language_queries": [
        {"clip_start_sec": 130.5, "clip_end_sec": 140.0, "query": "Where did I put the knife?", "template": "x"},
        {"clip_start_sec": 200.0, "clip_end_sec": 230.0, "template": "x"},
        {"clip_start_sec": 300.0, "clip_end_sec": 310.0, "query": "what did I pour in the bowl"},
    ]}]}]}]}

# MAD_{split}.json: {id: {movie, sentence, timestamps, ext_timestamps, movie_duration}}, seconds.
MAD = {
    "0": {"movie": "3001_21_JUMP_STREET", "sentence": "Someone opens the door.", "timestamps": [25.1, 27.3],
          "ext_timestamps": [24.6, 27.8], "movie_duration": 6110.7},
    "17": {"movie": "3001_21_JUMP_STREET", "sentence": "They run off.", "timestamps": [6109.0, 6112.0],
           "ext_timestamps": [6108.5, 6112.5], "movie_duration": 6110.7},
    "1200": {"movie": "1005_Signs", "sentence": "He looks up.", "timestamps": [3.0, 2.0],
             "ext_timestamps": [1.5, 3.5], "movie_duration": 6400.0},
}


def test_charades_with_durations(tmp_path):
    (tmp_path / "sta.txt").write_text(CHARADES_TXT)
    (tmp_path / "Charades_v1_test.csv").write_text(CHARADES_CSV)
    records = convert("charades", tmp_path / "sta.txt", tmp_path / "Charades_v1_test.csv", qid_start=100)
    assert records == [
        {"qid": 100, "query": "a person is putting a book on a shelf.", "vid": "AO8RW", "duration": 33.67,
         "relevant_windows": [[0.0, 6.9]]},
        {"qid": 101, "query": "person begins to play on a phone.", "vid": "AO8RW", "duration": 33.67,
         "relevant_windows": [[3.2, 33.67]]},  # the end is clamped to the video
        {"qid": 102, "query": "a person opens a closet door.", "vid": "Y6R7T", "duration": 24.0,
         "relevant_windows": [[11.1, 18.7]]},
    ]


def test_charades_without_durations_and_bad_lines(tmp_path, caplog):
    (tmp_path / "sta.txt").write_text(CHARADES_TXT)
    records = convert_charades(tmp_path / "sta.txt")
    assert [r["duration"] for r in records] == [40.0, 40.0, 18.7]
    assert "no durations given" in caplog.text
    (tmp_path / "bad.txt").write_text("AO8RW 0.0 6.9 a person without separator\n")
    with pytest.raises(DataError, match="line 1"):
        convert_charades(tmp_path / "bad.txt")
    (tmp_path / "durations.json").write_text(json.dumps({"AO8RW": 30}))
    with pytest.raises(DataError, match="Y6R7T"):
        convert("charades", tmp_path / "sta.txt", tmp_path / "durations.json")


def test_tacos_frames_to_seconds(tmp_path):
    (tmp_path / "tacos.json").write_text(json.dumps(TACOS))
    records = convert_tacos(tmp_path / "tacos.json")
    assert records == [
        {"qid": 0, "query": "The person washes the carrot.", "vid": "s13-d21", "duration": 100.0,
         "relevant_windows": [[5.0, 20.0]]},
        {"qid": 1, "query": "He cuts it.", "vid": "s13-d21", "duration": 100.0, "relevant_windows": [[30.0, 100.0]]},
    ]


def test_activitynet(tmp_path):
    (tmp_path / "val_1.json").write_text(json.dumps(ANET))
    records = convert_anet(tmp_path / "val_1.json", qid_start=7)
    assert [r["qid"] for r in records] == [7, 8]
    assert records[1] == {"qid": 8, "query": "She then dances.", "vid": "v_QOlSCBRmfWY", "duration": 82.73,
                          "relevant_windows": [[17.37, 60.81]]}
    broken = {"v_x": {"duration": 10, "timestamps": [[0, 1]], "sentences": []}}
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    with pytest.raises(DataError, match="v_x"):
        convert_anet(tmp_path / "broken.json")


def test_ego4d_nlq_clip_relative(tmp_path, caplog):
    (tmp_path / "nlq_val.json").write_text(json.dumps(EGO4D))
    records = convert_ego4d(tmp_path / "nlq_val.json")
    assert records == [
        {"qid": "ann-1_0", "query": "Where did I put the knife?", "vid": "clip-A", "duration": 480.0,
         "relevant_windows": [[30.5, 40.0]]},
        {"qid": "ann-1_2", "query": "what did I pour in the bowl", "vid": "clip-A", "duration": 480.0,
         "relevant_windows": [[200.0, 210.0]]},
    ]
    assert "skipped 1" in caplog.text
    (tmp_path / "other.json").write_text(json.dumps({"clips": []}))
    with pytest.raises(DataError, match="videos"):
        convert_ego4d(tmp_path / "other.json")


def test_cli_writes_jsonl_the_trainer_reads(tmp_path):
    from univtg_core.training.convert import main
    from univtg_core.training.data import check_records, load_jsonl

    (tmp_path / "tacos.json").write_text(json.dumps(TACOS))
    assert main(["tacos", str(tmp_path / "tacos.json"), str(tmp_path / "out" / "train.jsonl")]) == 0
    records = load_jsonl(tmp_path / "out" / "train.jsonl")
    check_records(records, "converted", need_labels=True)
    assert len(records) == 2
    assert main(["anet", str(tmp_path / "missing.json"), str(tmp_path / "x.jsonl")]) == 1

    (tmp_path / "sta.txt").write_text(CHARADES_TXT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "univtg_core.training.convert", "charades", str(tmp_path / "sta.txt"),
                           str(tmp_path / "charades.jsonl")], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert len((tmp_path / "charades.jsonl").read_text().splitlines()) == 3


def test_mad_ids_movies_and_extended_windows(tmp_path):
    (tmp_path / "MAD_test.json").write_text(json.dumps(MAD))
    records = convert("mad", tmp_path / "MAD_test.json")
    assert records == [
        {"qid": "0", "query": "Someone opens the door.", "vid": "3001_21_JUMP_STREET", "duration": 6110.7,
         "relevant_windows": [[24.6, 27.8]]},
        {"qid": "17", "query": "They run off.", "vid": "3001_21_JUMP_STREET", "duration": 6110.7,
         "relevant_windows": [[6108.5, 6110.7]]},  # clamped to the movie, as MAD's baselines clamp it
        {"qid": "1200", "query": "He looks up.", "vid": "1005_Signs", "duration": 6400.0,
         "relevant_windows": [[1.5, 3.5]]},
    ]
    original = convert_mad(tmp_path / "MAD_test.json", window_key="timestamps")
    assert [r["relevant_windows"] for r in original] == [[[25.1, 27.3]], [[6109.0, 6110.7]], [[2.0, 3.0]]]
    broken = {"5": {"movie": "m", "sentence": "s", "movie_duration": 10.0}}
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    with pytest.raises(DataError, match=r"\[5\]: missing ext_timestamps"):
        convert_mad(tmp_path / "broken.json")
    (tmp_path / "list.json").write_text(json.dumps([MAD["0"]]))
    with pytest.raises(DataError, match="expected MAD's layout"):
        convert_mad(tmp_path / "list.json")
    from univtg_core.training.convert import main
    assert main(["mad", str(tmp_path / "MAD_test.json"), str(tmp_path / "mad.jsonl")]) == 0
    assert len((tmp_path / "mad.jsonl").read_text().splitlines()) == 3
