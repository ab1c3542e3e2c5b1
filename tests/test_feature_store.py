"""The feature store: put/get/list/remove, memory-mapped reads, the content-hash manifest, resumable chunked
writes, and its faults (a truncated or corrupted entry, a process killed while writing, a full disk, two
writers at once), plus `python -m univtg_core cache list|prune`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from univtg_core import store as store_module
from univtg_core.errors import StoreError
from univtg_core.store import FeatureStore

REPO = Path(__file__).resolve().parents[1]


def _rows(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def test_put_get_list_remove_and_memory_mapped_reads(tmp_path):
    store = FeatureStore(tmp_path / "s")
    features = _rows(50)
    store.put("vid/with odd:chars", {"features": features, "pooler_output": features[0]}, meta={"source": "a.mp4"})
    entry = store.get("vid/with odd:chars")
    assert isinstance(entry.features, np.memmap) and not entry.features.flags.writeable
    np.testing.assert_array_equal(entry.features, features)
    np.testing.assert_array_equal(entry["pooler_output"], features[0])
    assert entry.meta == {"source": "a.mp4"}
    assert [(e.name, e.status, e.rows) for e in store.list()] == [("vid/with odd:chars", "complete", 50)]
    assert all(p.parent.parent == tmp_path / "s" / "entries" for p in (tmp_path / "s").rglob("*.npy"))
    store.put("vid/with odd:chars", features[:10])  # replaced atomically
    assert store.get("vid/with odd:chars").features.shape == (10, 16)
    assert store.remove("vid/with odd:chars") and store.get("vid/with odd:chars") is None
    assert not store.remove("vid/with odd:chars") and store.list() == []
    with pytest.raises(StoreError, match="not a feature store"):
        FeatureStore(tmp_path / "elsewhere", create=False)


def test_chunked_writes_resume_and_only_complete_entries_are_read(tmp_path):
    store = FeatureStore(tmp_path / "s")
    data = _rows(100)
    with store.writer("v", dim=16, total=100, meta={"encoder": "x"}) as writer:
        for first in range(0, 60, 16):
            writer.append(data[first:first + 16])
    # left without complete(): partial, never read as complete; the rows in are kept for a resume
    assert store.get("v") is None and store.info("v").status == "partial" and store.info("v").rows == 64
    with store.writer("v", dim=16, total=100, meta={"encoder": "x"}) as writer:
        assert writer.rows == 64
        writer.append(data[64:])
        entry = writer.complete()
    np.testing.assert_array_equal(entry.features, data)
    with store.writer("v", dim=16, total=100, meta={"encoder": "x"}) as writer:
        assert writer.entry is not None  # complete: nothing to write
    # other settings (another encoder) start over instead of resuming
    store.remove("v")
    with store.writer("v", dim=16, total=100, meta={"encoder": "x"}) as writer:
        writer.append(data[:32])
    with store.writer("v", dim=16, total=100, meta={"encoder": "y"}) as writer:
        assert writer.rows == 0
        with pytest.raises(StoreError, match="0 of 100 rows"):
            writer.complete()


def test_damaged_rows_of_a_partial_entry_are_computed_again(tmp_path):
    store = FeatureStore(tmp_path / "s")
    data = _rows(64)
    with store.writer("v", dim=16, total=64) as writer:
        for first in range(0, 48, 16):
            writer.append(data[first:first + 16])
    path = store.root / "entries" / "v" / "features.npy"
    raw = bytearray(path.read_bytes())
    raw[store_module.HEADER_BYTES + 20 * 64 + 3] ^= 0xFF  # a byte inside the second chunk
    path.write_bytes(bytes(raw) + b"\0" * 100)  # and bytes a killed writer left past the journal
    with store.writer("v", dim=16, total=64) as writer:
        assert writer.rows == 16  # the first chunk only
        writer.append(data[16:])
        np.testing.assert_array_equal(writer.complete().features, data)


@pytest.mark.parametrize("damage", ["truncate", "flip", "meta"])
def test_a_truncated_or_corrupted_entry_is_detected_and_removed(tmp_path, damage, caplog):
    store = FeatureStore(tmp_path / "s")
    store.put("v", _rows(40))
    folder = store.root / "entries" / "v"
    path = folder / "features.npy"
    if damage == "truncate":
        with open(path, "r+b") as handle:
            handle.truncate(path.stat().st_size - 64)
    elif damage == "flip":
        raw = bytearray(path.read_bytes())
        raw[-5] ^= 0x01
        path.write_bytes(bytes(raw))
    else:
        (folder / "meta.json").write_text("{not json")
    with caplog.at_level("WARNING", logger="univtg_core.store"):
        assert store.get("v") is None
    if damage != "meta":
        assert "damaged" in caplog.text and not folder.exists()


def test_the_manifest_hashes_an_unchanged_file_once(tmp_path, monkeypatch):
    store = FeatureStore(tmp_path / "s")
    video = tmp_path / "film.bin"
    video.write_bytes(b"x" * 5000)
    calls = []
    real = store_module.file_sha256
    monkeypatch.setattr(store_module, "file_sha256", lambda p: calls.append(p) or real(p))
    first = store.content_hash(video)
    assert FeatureStore(tmp_path / "s").content_hash(video) == first and len(calls) == 1  # a new process too
    video.write_bytes(b"y" * 5000)
    os.utime(video, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert store.content_hash(video) != first and len(calls) == 2


def _writer_script(root: Path, extra: str) -> str:
    return (
        "import sys, time, numpy as np\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "from univtg_core.store import FeatureStore\n"
        f"store = FeatureStore({str(root)!r})\n"
        "data = np.arange(400 * 64, dtype=np.float32).reshape(400, 64)\n" + extra
    )


def test_a_process_killed_while_writing_leaves_nothing_read_as_complete(tmp_path):
    root = tmp_path / "s"
    script = _writer_script(root, (
        "with store.writer('v', dim=64, total=400) as w:\n"
        "    for i in range(0, 400, 10):\n"
        "        w.append(data[i:i + 10])\n"
        "        if i == 200:\n"
        "            print('half', flush=True)\n"
        "        time.sleep(0.02)\n"
        "    w.complete()\n"))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "half"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    store = FeatureStore(root)
    assert store.get("v") is None and store.info("v").status == "partial"
    with store.writer("v", dim=64, total=400) as writer:
        assert 200 <= writer.rows < 400
        writer.append(np.arange(400 * 64, dtype=np.float32).reshape(400, 64)[writer.rows:])
        entry = writer.complete()
    np.testing.assert_array_equal(entry.features, np.arange(400 * 64, dtype=np.float32).reshape(400, 64))


def test_a_full_disk_gives_a_clear_message_and_no_partial_entry(tmp_path):
    """A file size limit (RLIMIT_FSIZE) makes the kernel refuse the write as a full disk would (EFBIG)."""
    root = tmp_path / "s"
    FeatureStore(root)
    script = _writer_script(root, (
        "import resource\n"
        "from univtg_core.errors import StoreFullError\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))\n"
        "try:\n"
        "    with store.writer('v', dim=64, total=400) as w:\n"
        "        for i in range(0, 400, 10):\n"
        "            w.append(data[i:i + 10])\n"
        "except StoreFullError as exc:\n"
        "    print('error:', exc)\n"))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("error: cannot write entry 'v'") and "no space left" in result.stdout
    assert "prune" in result.stdout and "--no-cache" in result.stdout
    store = FeatureStore(root)
    assert store.get("v") is None and store.info("v") is None and not (root / "entries" / "v").exists()


def test_two_processes_writing_one_entry_at_once_stay_consistent(tmp_path):
    root = tmp_path / "s"
    FeatureStore(root)
    script = _writer_script(root, (
        "with store.writer('v', dim=64, total=400) as w:\n"
        "    if w.entry is not None:\n"
        "        print('found complete', flush=True)\n"
        "    else:\n"
        "        for i in range(w.rows, 400, 20):\n"
        "            w.append(data[i:i + 20])\n"
        "            time.sleep(0.01)\n"
        "        w.complete()\n"
        "        print('wrote', flush=True)\n"
        "e = store.get('v')\n"
        "assert e is not None and np.array_equal(e.features, data)\n"))
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outputs]
    assert sorted(out.strip() for out, _ in outputs) == ["found complete", "wrote"]
    entries = FeatureStore(root).list()
    assert [(e.name, e.status, e.rows) for e in entries] == [("v", "complete", 400)]


def test_prune_by_age_and_size_and_the_cache_cli(tmp_path):
    root = tmp_path / "cache" / "store"
    store = FeatureStore(root)
    for i, age in enumerate((10 * 86400, 3 * 86400, 60)):
        store.put(f"e{i}", _rows(1000, seed=i), meta={"source": f"v{i}.mp4", "clip_len": 2.0})
        used = time.time() - age
        os.utime(root / "entries" / f"e{i}" / "used", (used, used))
    with store.writer("partial", dim=16, total=10) as writer:
        writer.append(_rows(2))
    listing = subprocess.run([sys.executable, "-m", "univtg_core", "cache", "list", "--cache-dir",
                              str(tmp_path / "cache")], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert listing.returncode == 0, listing.stderr
    assert "4 entries" in listing.stdout and "partial" in listing.stdout and "2/10" in listing.stdout
    assert "v0.mp4" in listing.stdout and "2 s clips" in listing.stdout
    dry = subprocess.run([sys.executable, "-m", "univtg_core", "cache", "prune", "--cache-dir", str(tmp_path / "cache"),
                          "--older-than", "7d", "--dry-run"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert dry.returncode == 0 and "would remove e0" in dry.stdout and len(store.list()) == 4
    removed = store.prune(older_than=7 * 86400, max_bytes=store.info("e2").nbytes + 1000)
    assert sorted(e.name for e in removed) == ["e0", "e1"]  # e0 by age, e1 the oldest past the size
    assert sorted(e.name for e in store.list()) == ["e2", "partial"]
    assert [e.name for e in store.prune(partial_older_than=0)] == ["partial"]
    bad = subprocess.run([sys.executable, "-m", "univtg_core", "cache", "prune", "--max-size", "lots"],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert bad.returncode == 2 and "not a size" in bad.stderr
    assert json.loads((root / "store.json").read_text())["format"] == "univtg-feature-store"
