"""The vocabulary files MESM's masked-word loss (FW-MESM) reads, and its GloVe vocabulary pickle.

- `CLIP_tokenized_count.txt`: one `<bpe id> <count>` line per CLIP BPE token of the annotations' sentences
  (each sentence cut to max_words_l - 2 tokens, start/end tokens not counted), most frequent first (ties in
  order of first appearance), as the official data/tokenized_count.py writes it. The first `vocab_size` ids
  are the classes of the masked-word head; every other token is `<unknown>`.
- `GloVe_tokenized_count.txt`: one `<word> <vocabulary index> <count>` line per word (lower-cased,
  punctuation replaced by spaces); the index is the word's place in the sorted vocabulary after <PAD>, <UNK>.
- The GloVe vocabulary pickle (`glove.pkl`: dict with `w2id`, `id2vec`, `counter`) is read with the
  allow-list unpickler, never plain pickle.load.

Command line (the official script counts the train and test splits of Charades-STA):

    python -m univtg_core.training.mesm_vocab ANNOTATION [ANNOTATION ...] --out DIR [--max_words_l 16]

An annotation is a jsonl of ours (`query` field), a Charades-STA `charades_sta_*.txt` (`vid start end##text`;
with `--durations Charades_v1_*.csv` the lines the official loader skips are skipped) or a TACoS json.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import string
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from univtg_core import safe_pickle
from univtg_core.errors import UniVTGError

logger = logging.getLogger(__name__)

CLIP_COUNT_FILE = "CLIP_tokenized_count.txt"
GLOVE_COUNT_FILE = "GloVe_tokenized_count.txt"


def split_words(text: str) -> list[str]:
    """The official GloVe word split: lower-case, every punctuation character becomes a space."""
    table = str.maketrans(string.punctuation, " " * len(string.punctuation))
    return str(text).lower().translate(table).strip().split()


def _ranked(counts: dict) -> list[tuple[Any, int]]:
    # sorted(..., reverse=True) is stable: equal counts keep the order of first appearance, as the official.
    return sorted(counts.items(), key=lambda item: item[1], reverse=True)


def count_clip_tokens(sentences: Iterable[str], max_words_l: int = 16, tokenizer=None) -> list[tuple[int, int]]:
    """(bpe id, count), most frequent first, of each sentence's first max_words_l - 2 BPE tokens."""
    if tokenizer is None:
        from open_clip.tokenizer import SimpleTokenizer

        tokenizer = SimpleTokenizer()
    counts: dict[int, int] = {}
    for sentence in sentences:
        for token in tokenizer.encode(sentence)[:max_words_l - 2]:
            counts[int(token)] = counts.get(int(token), 0) + 1
    return _ranked(counts)


def count_glove_words(sentences: Iterable[str]) -> list[tuple[str, int, int]]:
    """(word, vocabulary index, count), most frequent first; indices 0/1 are <PAD>/<UNK>, then sorted words."""
    counts: dict[str, int] = {}
    for sentence in sentences:
        for word in split_words(sentence):
            counts[word] = counts.get(word, 0) + 1
    index = {word: i + 2 for i, word in enumerate(sorted(counts))}
    return [(word, index[word], count) for word, count in _ranked(counts)]


def write_count_files(sentences: Sequence[str], out_dir: str | Path, max_words_l: int = 16,
                      tokenizer=None) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clip_path, glove_path = out_dir / CLIP_COUNT_FILE, out_dir / GLOVE_COUNT_FILE
    clip_path.write_text("".join(f"{i} {c}\n" for i, c in count_clip_tokens(sentences, max_words_l, tokenizer)))
    glove_path.write_text("".join(f"{w} {i} {c}\n" for w, i, c in count_glove_words(sentences)))
    return clip_path, glove_path


def clip_word_classes(count_file: str | Path, vocab_size: int) -> dict[Any, int]:
    """The masked-word classes of the CLIP path: the first vocab_size ids of the count file -> rank, then
    `<unknown>` = vocab_size, `<start>` = vocab_size + 1, `<end>` = vocab_size + 2."""
    classes: dict[Any, int] = {}
    for line in Path(count_file).read_text().splitlines():
        if len(classes) == vocab_size:
            break
        if line.strip():
            classes[int(line.split(" ")[0])] = len(classes)
    classes.update({"<unknown>": vocab_size, "<start>": vocab_size + 1, "<end>": vocab_size + 2})
    return classes


def clip_word_labels(bpe_ids: Sequence[int], classes: dict[Any, int],
                     max_words_l: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels and unknown mask (max_words_l,) of start + cut BPE ids + end, zero-padded, as the dataset makes
    them for the masked-word loss."""
    ids = list(bpe_ids)[:max_words_l - 2]
    labels = [classes["<start>"]] + [classes.get(i, classes["<unknown>"]) for i in ids] + [classes["<end>"]]
    unknown = [False] + [i not in classes for i in ids] + [False]
    out_labels = np.zeros(max_words_l, dtype=np.int64)
    out_unknown = np.zeros(max_words_l, dtype=bool)
    out_labels[:len(labels)] = labels
    out_unknown[:len(unknown)] = unknown
    return out_labels, out_unknown


# ------------------------------------------------------------------------------------------- annotations


class VocabularyError(UniVTGError):
    """An annotation or vocabulary file cannot be used."""


def charades_durations(paths: Sequence[str | Path]) -> dict[str, float] | None:
    """Video id -> duration (last column) of Charades_v1_*.csv files; None when none is given."""
    if not paths:
        return None
    durations: dict[str, float] = {}
    for path in paths:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        durations.update({row[0]: float(row[-1]) for row in rows[1:] if row})
    return durations


def read_sentences(path: str | Path, durations: dict[str, float] | None = None) -> list[str]:
    """The sentences of one annotation file, in file order (see the module docstring for the formats)."""
    path = Path(path)
    if not path.is_file():
        raise VocabularyError(f"annotation file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line)["query"] for line in text.splitlines() if line.strip()]
    if path.suffix == ".json":
        data = json.loads(text)
        return [s for meta in data.values() for (t0, t1), s in zip(meta["timestamps"], meta["sentences"])
                if t0 <= t1]
    sentences = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if "##" not in line:
            raise VocabularyError(f"{path} line {n} is not 'vid start end##sentence' (Charades-STA format)")
        head, sentence = line.split("##", 1)
        vid, start, _ = head.split()
        if durations is not None and vid in durations and float(start) > durations[vid]:
            continue  # the official loader drops annotations that start after the video
        sentences.append(sentence.rstrip())
    return sentences


# -------------------------------------------------------------------------------------------- GloVe pickle


@dataclass(frozen=True)
class GloveVocabulary:
    """MESM's `glove.pkl`: word -> id, id -> 300-d vector, and the word counts (the masked-word classes)."""

    w2id: dict[str, int]
    id2vec: np.ndarray
    counter: Counter

    def classes(self, vocab_size: int) -> dict[str, int]:
        """The vocab_size most common words -> rank, then `<unknown>` (the GloVe pickle path's classes)."""
        classes = {w: i for i, (w, _) in enumerate(self.counter.most_common(vocab_size))}
        classes["<unknown>"] = vocab_size
        return classes

    def vectors(self, words: Sequence[str], max_words_l: int) -> tuple[list[str], np.ndarray]:
        """The words found in the vocabulary (others are dropped, as the official tokenizer does), cut to
        max_words_l, and their vectors (T, dim) float32."""
        kept = [w for w in (w.lower() for w in words) if w in self.w2id][:max_words_l]
        if not kept:
            return [], np.zeros((0, self.id2vec.shape[1]), np.float32)
        return kept, np.stack([np.asarray(self.id2vec[self.w2id[w]], dtype=np.float32) for w in kept])


def load_glove_vocabulary(path: str | Path) -> GloveVocabulary:
    """Read a GloVe vocabulary pickle with the allow-list unpickler (plain data, numpy arrays, Counter)."""
    data = safe_pickle.load(path, allow=["collections.Counter"], what=f"GloVe vocabulary {path}")
    if not isinstance(data, dict) or not {"w2id", "id2vec"} <= set(data):
        raise VocabularyError(f"{path} is not a MESM GloVe vocabulary (a dict with w2id, id2vec, counter)")
    id2vec = np.asarray(data["id2vec"], dtype=np.float32)
    if id2vec.ndim != 2:
        raise VocabularyError(f"{path}: id2vec must be an (words, dim) array, got shape {id2vec.shape}")
    counter = data.get("counter") or Counter()
    return GloveVocabulary(dict(data["w2id"]), id2vec, Counter(counter))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m univtg_core.training.mesm_vocab",
                                     description="Write MESM's CLIP/GloVe word-count files from annotations.")
    parser.add_argument("annotations", nargs="+", help="jsonl (ours), Charades-STA txt or TACoS json files")
    parser.add_argument("--out", required=True, help="folder for CLIP_tokenized_count.txt, GloVe_tokenized_count.txt")
    parser.add_argument("--max_words_l", type=int, default=16, help="MESM's max_words_l (CLIP token cut)")
    parser.add_argument("--durations", nargs="*", default=[],
                        help="Charades_v1_*.csv files: skip annotations that start after the video")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        durations = charades_durations(args.durations)
        sentences = [s for path in args.annotations for s in read_sentences(path, durations)]
        if not sentences:
            raise VocabularyError("the annotations hold no sentences")
        paths = write_count_files(sentences, args.out, args.max_words_l)
    except (UniVTGError, OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logger.info("%d sentences -> %s", len(sentences), ", ".join(map(str, paths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
