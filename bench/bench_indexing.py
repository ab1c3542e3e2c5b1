"""Indexing throughput, memory and query latency, measured in one run so the ratios are comparable.

    python -m bench.bench_indexing [--minutes 10] [--size 640x360] [--fps 30] [--clip-weights random]

Reports, for a generated video: decode-only, encode-only and full-indexing throughput (video seconds per wall
second), full indexing as a share of the encode-only bound, peak memory over the baseline while indexing a
video of half and of full length (flat memory means the two peaks match), and query latency on the indexed
video (zero-shot and with a UniVTG model of the official omni shape).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

import torch

from univtg_core.encoders import load_clip_encoder
from univtg_core.indexing import index_video
from univtg_core.inference import ground
from univtg_core.media import make_test_pattern_video
from univtg_core.models.univtg import UniVTG, UniVTGConfig
from univtg_core.video import clip_count, iter_clip_frames, probe_video


def rss_mib() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class PeakMemory:
    """Samples resident memory in a thread; `peak` is the most seen above the level at start."""

    def __init__(self, interval: float = 0.02):
        self.interval = interval
        self.peak = 0.0
        self._stop = threading.Event()

    def __enter__(self):
        self.base = rss_mib()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mib() - self.base)
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--clip-len", type=float, default=2.0)
    parser.add_argument("--clip-weights", default="random")
    parser.add_argument("--device", default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json", dest="json_out", help="also write the figures here")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))

    encoder = load_clip_encoder("ViT-B-32", weights=args.clip_weights, device=args.device)
    work = Path(tempfile.mkdtemp(prefix="univtg-bench-"))
    seconds = args.minutes * 60
    video = make_test_pattern_video(work / "long.mp4", duration=seconds, fps=args.fps, size=(width, height))
    half = make_test_pattern_video(work / "half.mp4", duration=seconds / 2, fps=args.fps, size=(width, height))
    info = probe_video(video)
    n_clips = clip_count(info.duration, args.clip_len)
    print(f"video: {info.duration:.0f} s, {info.width}x{info.height} @ {info.fps:.1f} fps, {n_clips} clips, "
          f"device {encoder.device}, {torch.get_num_threads()} threads")

    # Decode only: every clip frame, nothing encoded.
    batches, t_decode = timed(lambda: list(iter_clip_frames(video, clip_len=args.clip_len, size=encoder.image_size,
                                                          batch_size=args.batch_size)))

    # Encode only: the same frames, already in memory (the bound full indexing can approach).
    encoder.encode_frames(batches[0][:4])  # warm-up
    _, t_encode = timed(lambda: [encoder.encode_frames(b) for b in batches])
    batches.clear()

    # Full indexing (decode overlapped with encode), no cache; memory for half and full length.
    with PeakMemory() as mem_half:
        index_video(half, encoder, clip_len=args.clip_len, use_cache=False, batch_size=args.batch_size)
    with PeakMemory() as mem_full:
        index, t_full = timed(index_video, video, encoder, clip_len=args.clip_len, use_cache=False,
                              batch_size=args.batch_size)

    # Query latency on the indexed video: text encoding + grounding, median of repeated runs.
    config = UniVTGConfig()  # the official omni shape: 512 (+2 tef) -> 1024, 4 layers
    torch.manual_seed(0)
    model = UniVTG(config).to(encoder.device).eval()
    queries = ["a person jumps into the pool", "the dog runs on the beach", "someone opens the fridge"]

    def one_query(text: str, use_model: bool):
        q = encoder.encode_text(text)
        return ground(index.features, q.tokens, clip_len=args.clip_len, model=model if use_model else None,
                      query_sentence=q.sentence, duration=index.duration)

    latencies = {}
    for label, use_model in (("zero-shot", False), ("model", True)):
        one_query(queries[0], use_model)
        runs = [timed(one_query, queries[i % len(queries)], use_model)[1] for i in range(15)]
        latencies[label] = statistics.median(runs) * 1000

    figures = {
        "video_seconds": info.duration,
        "resolution": f"{info.width}x{info.height}",
        "fps": info.fps,
        "clips": n_clips,
        "device": str(encoder.device),
        "decode_only_x_realtime": info.duration / t_decode,
        "encode_only_x_realtime": info.duration / t_encode,
        "full_index_x_realtime": info.duration / t_full,
        "full_over_encode_only": t_encode / t_full,
        "peak_mem_mib_half_length": mem_half.peak,
        "peak_mem_mib_full_length": mem_full.peak,
        "query_ms_zero_shot": latencies["zero-shot"],
        "query_ms_model": latencies["model"],
    }
    print(f"decode only : {figures['decode_only_x_realtime']:7.1f} video s / wall s ({t_decode:.1f} s)")
    print(f"encode only : {figures['encode_only_x_realtime']:7.1f} video s / wall s ({t_encode:.1f} s)")
    print(f"full index  : {figures['full_index_x_realtime']:7.1f} video s / wall s ({t_full:.1f} s) = "
          f"{figures['full_over_encode_only']:.2f} of the encode-only bound")
    print(f"peak memory : +{mem_half.peak:.0f} MiB at {seconds / 2:.0f} s, +{mem_full.peak:.0f} MiB at {seconds:.0f} s")
    print(f"query       : {latencies['zero-shot']:.1f} ms zero-shot, {latencies['model']:.1f} ms with the model "
          f"(median of 15, text encoding included)")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
