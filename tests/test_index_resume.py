"""Indexing long videos into the feature store: memory that does not grow with the length, an index killed
halfway that resumes (fewer clips decoded the second time, the same features as an uninterrupted run), damaged
entries rebuilt, two indexers of one file at once, and clip lengths other than 2 s. Videos are generated
(64x36, 1 fps); the encoder is a tiny random CLIP behind the real `ClipEncoder`."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from univtg_core import Grounder, VideoReadError
from univtg_core.indexing import index_video, open_store
from univtg_core.media import make_colour_video, make_test_pattern_video
from univtg_core.store import FeatureStore

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
from tiny_clip import tiny_clip_encoder  # noqa: E402

WIDE = 4096  # 600 clips x 4096 floats = 9.4 MiB: more than the whole bound, so holding them would fail it
BATCH = 8  # frames per decoded batch
# What indexing 20 minutes may allocate at its peak (traced numpy/Python memory): the decoder's queue of
# (2 ready + 1 filling + 1 being encoded) batches of 8 frames of 224 x 224 x 3 (4.6 MiB), a chunk of features,
# and change. It does not depend on the video's length.
PEAK_BOUND = 8 * 2**20


class Counting:
    """Wraps an encoder's stream to count the clips it gives."""

    def __init__(self, encoder):
        self.encoder = encoder
        self.fingerprint, self.embed_dim = encoder.fingerprint, encoder.embed_dim
        self.clips = 0

    def expected_clips(self, path, clip_len=2.0):
        return self.encoder.expected_clips(path, clip_len)

    def iter_video_features(self, path, clip_len=2.0, progress=None, *, start_clip=0):
        for chunk in self.encoder.iter_video_features(path, clip_len, progress, start_clip=start_clip):
            self.clips += len(chunk)
            yield chunk


@pytest.fixture(scope="module")
def films(tmp_path_factory):
    root = tmp_path_factory.mktemp("films")
    return {"20min": make_test_pattern_video(root / "film20.mp4", 1200, fps=1, size=(64, 36))}


@pytest.mark.slow
def test_indexing_memory_is_bounded_and_a_killed_index_resumes(films, tmp_path):
    """~20 s on a loaded 2-core machine: 20 minutes indexed twice (600 clips each time, half of them resumed)."""
    encoder = tiny_clip_encoder(embed_dim=WIDE)
    tracemalloc.start()
    try:
        whole = index_video(films["20min"], encoder, 2.0, cache_dir=tmp_path / "a", batch_size=BATCH)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert whole.n_clips == 600 and isinstance(whole.features, np.memmap)
    assert whole.features.nbytes > PEAK_BOUND
    assert peak < PEAK_BOUND, f"indexing 20 minutes allocated {peak / 2**20:.1f} MiB at its peak"

    # index in another process, killed (SIGKILL: no clean-up) once it is past half the clips
    script = (f"import os, signal, sys\nsys.path[:0] = [{str(TESTS)!r}, {str(TESTS.parent)!r}]\n"
              "from tiny_clip import tiny_clip_encoder\nfrom univtg_core.indexing import index_video\n"
              "def progress(done, total):\n"
              "    if done >= total // 2:\n"
              "        os.kill(os.getpid(), signal.SIGKILL)\n"
              f"index_video({str(films['20min'])!r}, tiny_clip_encoder(embed_dim={WIDE}), 2.0, "
              f"cache_dir={str(tmp_path / 'b')!r}, progress=progress)\n")
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    store = open_store(tmp_path / "b")
    [partial] = store.list()
    assert partial.status == "partial" and 200 <= partial.rows < 600 and store.get(partial.name) is None

    counting = Counting(encoder)
    resumed = index_video(films["20min"], counting, 2.0, cache_dir=tmp_path / "b")
    assert counting.clips == resumed.computed == 600 - partial.rows, "the resumed index started over"
    assert not resumed.from_cache and resumed.n_clips == 600
    np.testing.assert_array_equal(resumed.features, whole.features)
    assert [e.status for e in store.list()] == ["complete"]


@pytest.fixture(scope="module")
def short(tmp_path_factory):
    root = tmp_path_factory.mktemp("short")
    return make_colour_video(root / "colours.mp4", [((230, 20, 20), 6), ((0, 230, 230), 6), ((140, 20, 200), 8)],
                             fps=5, size=(64, 36))


def test_a_damaged_entry_is_rebuilt_not_trusted(short, tmp_path):
    encoder = tiny_clip_encoder()
    expected = np.array(index_video(short, encoder, 2.0, cache_dir=tmp_path).features)  # a copy: the file changes
    [entry] = open_store(tmp_path).list()
    data = open_store(tmp_path).root / "entries" / entry.name / "features.npy"
    raw = bytearray(data.read_bytes())
    raw[-7] ^= 0x40
    data.write_bytes(bytes(raw))
    counting = Counting(encoder)
    again = index_video(short, counting, 2.0, cache_dir=tmp_path)
    assert not again.from_cache and counting.clips == again.n_clips == 10
    np.testing.assert_array_equal(again.features, expected)
    assert index_video(short, counting, 2.0, cache_dir=tmp_path).from_cache


def test_two_indexers_of_one_file_at_once_compute_it_once(short, tmp_path):
    counting = Counting(tiny_clip_encoder())
    results, errors = [], []

    def run():
        try:
            results.append(index_video(short, counting, 2.0, cache_dir=tmp_path))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and len(results) == 2
    assert counting.clips == 10, "the second indexer must wait and read the first one's entry"
    np.testing.assert_array_equal(results[0].features, results[1].features)
    assert sorted(r.from_cache for r in results) == [False, True]


def test_a_broken_file_leaves_no_entry(tmp_path, short):
    broken = tmp_path / "cut.mp4"
    data = Path(short).read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoReadError):
        index_video(broken, tiny_clip_encoder(), 2.0, cache_dir=tmp_path / "cache")
    assert [e for e in FeatureStore(tmp_path / "cache" / "store").list()] == []


def test_clips_of_a_fifth_of_a_second_work_end_to_end(short, tmp_path):
    grounder = Grounder(tiny_clip_encoder(), clip_len=0.2, cache_dir=tmp_path)
    index = grounder.index(short)
    assert index.n_clips == 100 and index.clip_len == 0.2
    pred = grounder.query(index, text="a purple wall", coarse_top_k=2)
    assert len(pred.saliency) == 100 and pred.clip_len == 0.2 and pred.to_dict()["clip_len"] == 0.2
    assert pred.moments and all(0 <= m.start < m.end <= 20.0 + 1e-6 for m in pred.moments)
    two_seconds = Grounder(tiny_clip_encoder(), clip_len=2.0, cache_dir=tmp_path).index(short)
    assert two_seconds.n_clips == 10 and len(open_store(tmp_path).list()) == 2  # one entry per clip length
