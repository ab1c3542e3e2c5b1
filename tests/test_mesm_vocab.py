"""MESM's word-count files and GloVe vocabulary pickle (the official formats; the pickle read safely)."""

from __future__ import annotations

import json
import pickle
from collections import Counter

import numpy as np
import pytest

from univtg_core.errors import UnsafeFileError
from univtg_core.training.mesm_vocab import (
    clip_word_classes,
    clip_word_labels,
    count_glove_words,
    load_glove_vocabulary,
    main,
    read_sentences,
)

LINES = ["V1 0.0 5.0##a person opens the door.", "V1 6.0 9.0##The person, laughing, opens a bag!",
         "V2 50.0 60.0##a person sits down."]


@pytest.fixture()
def annotations(tmp_path):
    (tmp_path / "sta.txt").write_text("\n".join(LINES) + "\n")
    (tmp_path / "durations.csv").write_text("id,subject,length\nV1,x,30.0\nV2,y,40.0\n")
    return tmp_path


def test_count_files_in_the_official_format(annotations, tmp_path):
    out = tmp_path / "out"
    assert main([str(annotations / "sta.txt"), "--out", str(out), "--max_words_l", "6",
                 "--durations", str(annotations / "durations.csv")]) == 0
    glove = [line.split() for line in (out / "GloVe_tokenized_count.txt").read_text().splitlines()]
    # V2 starts after its 40 s video: skipped, as the official loader skips it
    words = sorted({"a", "person", "opens", "the", "door", "laughing", "bag"})
    assert glove[:3] == [["a", str(2 + words.index("a")), "2"], ["person", str(2 + words.index("person")), "2"],
                         ["opens", str(2 + words.index("opens")), "2"]]
    assert ["the", str(2 + words.index("the")), "2"] in glove and len(glove) == len(words)
    from open_clip.tokenizer import SimpleTokenizer

    tok = SimpleTokenizer()
    clip = [tuple(map(int, line.split())) for line in (out / "CLIP_tokenized_count.txt").read_text().splitlines()]
    # max_words_l 6: 4 BPE tokens of each sentence
    counted = Counter(t for s in LINES[:2] for t in tok.encode(s.split("##")[1])[:4])
    assert dict(clip) == dict(counted) and [c for _, c in clip] == sorted(counted.values(), reverse=True)
    classes = clip_word_classes(out / "CLIP_tokenized_count.txt", vocab_size=2)
    assert classes[clip[0][0]] == 0 and classes[clip[1][0]] == 1 and classes["<end>"] == 4
    labels, unknown = clip_word_labels(tok.encode("a person opens the door."), classes, max_words_l=6)
    assert labels[0] == 3 and labels[5] == 4 and unknown[0] == unknown[5] == False  # noqa: E712
    assert unknown[1:5].tolist() == [t not in classes for t in tok.encode("a person opens the door.")[:4]]


def test_other_annotation_formats_and_errors(tmp_path, capsys):
    (tmp_path / "a.jsonl").write_text(json.dumps({"qid": 1, "query": "A dog runs."}) + "\n")
    (tmp_path / "tacos.json").write_text(json.dumps({"s1.avi": {"timestamps": [[1, 5], [9, 3]],
                                                                 "sentences": ["cut it", "wrong"]}}))
    assert read_sentences(tmp_path / "a.jsonl") == ["A dog runs."]
    assert read_sentences(tmp_path / "tacos.json") == ["cut it"]
    assert count_glove_words(["Dog, dog; cat."]) == [("dog", 3, 2), ("cat", 2, 1)]
    assert main([str(tmp_path / "missing.txt"), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.startswith("error: annotation file not found")


def test_glove_vocabulary_pickle_is_read_safely(tmp_path):
    vocab = {"w2id": {"person": 0, "door": 1}, "id2vec": np.arange(600, dtype=np.float32).reshape(2, 300),
             "counter": Counter({"person": 5, "door": 2})}
    path = tmp_path / "glove.pkl"
    path.write_bytes(pickle.dumps(vocab))
    loaded = load_glove_vocabulary(path)
    words, vectors = loaded.vectors(["Person", "opens", "door"], max_words_l=16)
    assert words == ["person", "door"] and vectors.shape == (2, 300) and vectors[1, 0] == 300
    assert loaded.classes(1) == {"person": 0, "<unknown>": 1}

    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps({"w2id": {}, "id2vec": Payload()}))
    with pytest.raises(UnsafeFileError, match="open"):
        load_glove_vocabulary(bad)
    assert not marker.exists()
