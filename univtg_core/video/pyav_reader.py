"""The PyAV backend, the default: the official extractor's pixels for the least decoding.

It reads the packet index first (no decoding), plans from it which keyframes to start from (`seek_plan`),
seeks only when a keyframe lies between the decoder and the next wanted frame, and, for decoders that
apply it to the packet they are given (`SKIP_SAFE_DECODERS`), tells the decoder to skip the non-reference
frames that are not wanted (``skip_frame="NONREF"`` per packet). The frames are bit-identical to a full
decode. Clip frames are converted by libavfilter exactly as the official extractor's ffmpeg command line
converts them (`avfilter.FrameConverter`: the display rotation, ffmpeg's ``scale`` and ``crop``); the
thumbnails keep libswscale's bicubic ``reformat``, turned upright.

Two kinds of stream are decoded from the start, counting frames, because their packet timestamps do not
say which frame is shown when: streams without timestamps, and streams whose timestamps are in decoding
order although the decoder reorders frames (B-frames in AVI): there the n-th frame out of the decoder is
shown at the n-th smallest timestamp.

Progress is guaranteed: the reader seeks again only after it has delivered a frame since the last seek
(or once, to retry without skipping), so a file whose seeks land anywhere, or whose packets all fail to
decode, ends in a frame or a `VideoReadError`, never a loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from fractions import Fraction

import av
import numpy as np

from ..avfilter import (
    FrameConverter,
    apply_display_transform,
    display_transform,
    official_geometry,
    rescale_near,
    rotation_degrees,
    swaps_axes,
)
from ..errors import VideoReadError
from .reader import ACCEPTED, NoFrames, Reader, VideoInfo, short_error, still_image_error
from .sampling import clip_frame_indices, frame_ticks, time_ticks
from .seek_plan import needs_seek, plan_seeks

logger = logging.getLogger(__name__)

# A wanted frame the decoder never produced (corrupt data) may be replaced by a neighbour this close.
_MAX_SUBSTITUTE_GAP = 1.0
# Decoders that apply ``skip_frame`` to the packet just sent (checked bit-exact in tests/test_video.py).
# Not libdav1d (AV1): it takes the setting once, when the decoder opens, so a first packet sent with NONREF
# would make it drop every non-reference frame for good, wanted ones included (issue 9 item 6); the
# first-frame decode at open keeps every decoder opened with the default.
SKIP_SAFE_DECODERS = frozenset({"h264", "hevc", "mpeg4", "mpeg2video", "mpeg1video"})
# Packets tried for the first frame (whose display matrix says how the video is turned).
_FIRST_FRAME_PACKETS = 256


class PyAVReader(Reader):
    name = "pyav"
    decode_errors = (av.error.FFmpegError,)
    official_pixels = True

    def __init__(self, path: str):
        self.path = path
        try:
            self._container = av.open(path, metadata_errors="ignore")
        except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
            raise VideoReadError(f"cannot open {path!r} as a video ({short_error(exc)}). {ACCEPTED}") from exc
        try:
            streams = self._container.streams.video
            if not streams:
                kinds = sorted({s.type for s in self._container.streams})
                if not kinds:
                    raise NoFrames(f"{path!r} has no video stream (the container is empty). {ACCEPTED}")
                raise NoFrames(
                    f"{path!r} has no video stream (found: {', '.join(kinds)}); an audio-only file cannot be "
                    f"indexed. {ACCEPTED}"
                )
            self._stream = streams[0]
            fmt = self._container.format.name
            if fmt.startswith("image2") or fmt.endswith("_pipe"):  # png_pipe, jpeg_pipe, image2, ...
                codec = self._stream.codec_context.name if self._stream.codec_context else fmt
                raise still_image_error(path, f"a still image ({codec.upper()})")
            self._configure_decoder()
            self._pts: np.ndarray | None = None  # packet pts in display order (stream time base)
            self._keys: np.ndarray | None = None  # keyframe pts, ascending; None: frames are counted
            self._times: np.ndarray | None = None
            self._counted = False  # timestamps in decoding order: frames are counted in display order
            self._bad_packets = 0
            self._last_decode_error = ""
            self._decoded_any = False
            self._duration_from_stream = False
            self._converters: dict[int, Callable] = {}
            self._offset = self._file_start()
            self._transform = self._display_transform()
            self.info = self._probe()
        except BaseException:
            self._container.close()
            raise

    # -- metadata -----------------------------------------------------------------------------------
    def _file_start(self) -> int:
        """The file's start (its earliest stream) in the video's time base: the zero of the timeline."""
        start = self._container.start_time  # microseconds; None when unknown
        tb = self._stream.time_base
        if start in (None, 0) or not tb:
            return 0
        return rescale_near(int(start), Fraction(1, 1_000_000), Fraction(tb))

    def _probe(self) -> VideoInfo:
        s = self._stream
        cc = s.codec_context
        width, height = int(cc.width or 0), int(cc.height or 0)
        if width <= 0 or height <= 0:
            raise VideoReadError(f"{self.path!r}: the video stream has no frame size; the file looks corrupt.")
        n_frames = int(s.frames or 0)
        if n_frames <= 0:  # container does not say (mkv, webm, ts): count the packets
            n_frames = len(self._index()[0])
        if n_frames <= 0:
            raise NoFrames(f"{self.path!r} has a video stream with zero frames. {ACCEPTED}")
        if n_frames == 1:
            raise still_image_error(self.path, "a single frame (a still picture)")
        tb = float(s.time_base) if s.time_base else 0.0
        rate = s.average_rate or s.guessed_rate
        fps = float(rate) if rate else 0.0
        start = max(0.0, (s.start_time - self._offset) * tb) if s.start_time is not None and tb else 0.0
        duration = 0.0
        if s.duration and tb:  # the video stream's own length (mp4, mov), from its first frame
            duration = start + s.duration * tb
            self._duration_from_stream = True
        elif self._pts is not None:  # indexed already: last frame start plus one frame
            duration = float(self.times[-1]) + (1.0 / fps if fps > 0 else 0.0)
        elif self._container.duration:  # longest stream of the container: last resort
            duration = self._container.duration / 1_000_000
        if duration <= 0:
            duration = float(self.times[-1]) + (1.0 / fps if fps > 0 else 0.0)
        if self._pts is not None:  # the index knows when the first frame is shown
            start = float(self.times[0])
        if fps <= 0:
            fps = n_frames / duration if duration > 0 else 0.0
        if swaps_axes(self._transform):
            width, height = height, width
        return VideoInfo(self.path, float(duration), fps, n_frames, width, height, self.name, float(start),
                         rotation_degrees(self._transform))

    def _index(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Read every packet header of the video stream once (no decoding): pts and keyframes."""
        if self._pts is None:
            pts, dts, keys = [], [], []
            missing = False
            increasing = True
            try:
                for packet in self._container.demux(self._stream):
                    if packet.size == 0:
                        continue
                    if packet.pts is None:
                        missing = True
                        pts.append(len(pts))
                        continue
                    if pts and packet.pts <= pts[-1]:
                        increasing = False
                    pts.append(packet.pts)
                    dts.append(packet.dts)
                    if packet.is_keyframe:
                        keys.append(packet.pts)
            except av.error.FFmpegError as exc:
                if not pts:
                    raise VideoReadError(
                        f"cannot read packets of {self.path!r} ({short_error(exc)}). {ACCEPTED}"
                    ) from exc
                logger.warning("%s: stopped reading packets after %d (%s)", self.path, len(pts), short_error(exc))
            self._rewind()
            if missing:  # no timestamps (raw streams, some avi): fall back to frame counting
                self._pts = np.arange(len(pts), dtype=np.int64)
                self._keys = None
            else:
                self._pts = np.unique(np.asarray(pts, dtype=np.int64))
                self._keys = np.unique(np.asarray(keys, dtype=np.int64))
                # A decoder that reorders frames cannot be fed increasing presentation times: these are
                # guesses made from decoding times (AVI). The n-th frame out of the decoder is then shown at
                # the n-th decoding time, the stream's own clock.
                self._counted = bool(self._stream.codec_context.has_b_frames) and increasing and len(pts) > 2
                if self._counted and None not in dts:
                    self._pts = np.unique(np.asarray(dts, dtype=np.int64))
        return self._pts, self._keys

    @property
    def times(self) -> np.ndarray:
        if self._times is None:
            pts, keys = self._index()
            if len(pts) == 0:
                raise NoFrames(f"{self.path!r} has a video stream with zero frames. {ACCEPTED}")
            if keys is None:
                rate = self._stream.average_rate or self._stream.guessed_rate
                self._times = pts / float(rate) if rate else pts.astype(np.float64)
            else:
                self._times = (pts - self._offset) * float(self._stream.time_base)
            info = getattr(self, "info", None)
            if self._duration_from_stream and info is not None:
                end = float(self._times[-1])
                if info.duration - end > max(1.0, 2.0 / max(info.fps, 1e-3)):
                    raise VideoReadError(
                        f"{self.path!r} looks truncated or corrupt: its frames stop at {end:.2f} s but it "
                        f"says it lasts {info.duration:.2f} s. {ACCEPTED}"
                    )
        return self._times

    def clip_indices(self, n_clips: int, clip_len: float) -> np.ndarray:
        """The official extractor's frame for each clip, in exact integer arithmetic on the timestamps."""
        times = self.times  # checks for truncation
        pts, keys = self._index()
        if keys is None:
            return clip_frame_indices(time_ticks(times, clip_len), n_clips)
        return clip_frame_indices(frame_ticks(pts, self._offset, Fraction(self._stream.time_base), clip_len),
                                  n_clips)

    def _display_transform(self) -> tuple:
        """The display-matrix filters of the first frame (how a player turns the picture)."""
        frame = None
        try:
            for i, packet in enumerate(self._container.demux(self._stream)):
                frames = self._decode_packet(packet, quiet=True)
                if frames:
                    frame = frames[0]
                    break
                if i >= _FIRST_FRAME_PACKETS:
                    break
        except av.error.FFmpegError:
            pass
        self._rewind()
        return display_transform(frame) if frame is not None else ()

    # -- decoding -----------------------------------------------------------------------------------
    def _rewind(self) -> None:
        """Back to the first packet; streams that cannot seek (raw H.264) are opened again."""
        try:
            self._container.seek(0)
        except av.error.FFmpegError:
            self._container.close()
            self._container = av.open(self.path, metadata_errors="ignore")
            self._stream = self._container.streams.video[0]
            self._configure_decoder()

    def _configure_decoder(self) -> None:
        cc = self._stream.codec_context
        if cc is None:  # no codec parameters: the headers that describe the stream are missing
            raise VideoReadError(f"{self.path!r}: its video stream cannot be decoded (the headers that describe "
                                 f"it are missing; the file looks truncated or corrupt). {ACCEPTED}")
        self._stream.thread_type = "SLICE"
        cc.thread_count = 1  # the caller's encoder wants the other cores; one thread is cheapest per frame

    def _frames(
        self, indices: np.ndarray, width: int, height: int, should_stop: Callable[[], bool] | None
    ) -> Iterator[np.ndarray]:
        coded = (height, width) if swaps_axes(self._transform) else (width, height)
        for count, frame in self._decoded(indices, should_stop):
            rgb = frame.reformat(width=coded[0], height=coded[1], format="rgb24",
                                 interpolation="BICUBIC").to_ndarray()
            rgb = apply_display_transform(rgb, self._transform)
            for _ in range(count):
                yield rgb

    def _clip_frames(
        self, indices: np.ndarray, size: int, should_stop: Callable[[], bool] | None
    ) -> Iterator[np.ndarray]:
        convert = self._converters.get(size)
        if convert is None:
            convert = self._converters[size] = self._clip_converter(size)
        for count, frame in self._decoded(indices, should_stop):
            rgb = convert(frame)
            for _ in range(count):
                yield rgb

    def _clip_converter(self, size: int) -> Callable:
        """One libavfilter graph per reader: the official geometry from the coded size, the display rotation."""
        cc = self._stream.codec_context
        return FrameConverter(official_geometry(cc.width, cc.height, size), self._transform).convert

    def _decoded(self, indices: np.ndarray, should_stop: Callable[[], bool] | None) -> Iterator[tuple[int, object]]:
        """``(count, frame)`` in order: each decoded frame and how many of ``indices`` (in a row) it stands for."""
        if len(indices) == 0:
            return
        pts, keys = self._index()
        targets = pts[indices]
        wanted = [int(p) for p in np.unique(targets)]
        if keys is None or self._counted:
            source = self._decode_counting(wanted)
        else:
            source = self._decode_planned(wanted, keys)
        k = 0
        try:
            for want, frame in source:
                if should_stop is not None and should_stop():
                    return
                count = 0
                while k < len(targets) and int(targets[k]) == want:
                    count += 1
                    k += 1
                if count:
                    yield count, frame
        finally:
            source.close()

    def _decode_planned(self, wanted: list[int], keys: np.ndarray) -> Iterator[tuple[int, object]]:
        """Yield ``(pts, frame)`` for each wanted pts (ascending), decoding as little as possible.

        Packets whose pts is not wanted are decoded with ``skip_frame="NONREF"`` (decoders in
        `SKIP_SAFE_DECODERS`): the decoder drops them when no other frame refers to them, which changes
        nothing in the frames that are kept. Should a wanted frame still go missing while skipping, its group
        is decoded again without skipping. The demuxer seeks to the keyframe of the next wanted frame's group
        (`seek_plan`) only when it has not read it yet, and only after a frame was delivered since the last
        seek: a seek that lands too early is read on from, never repeated.
        """
        plan = plan_seeks(wanted, keys.tolist())
        wanted = [pts for group in plan for pts in group.wanted]
        start_at = [group.keyframe for group in plan for _ in group.wanted]  # the keyframe of each one's group
        wset = set(wanted)
        tb = float(self._stream.time_base)
        k, n = 0, len(wanted)
        may_seek = True
        skipping = self._stream.codec_context.name in SKIP_SAFE_DECODERS
        sought_at = -1  # k when the last seek was made

        while k < n:
            origin = start_at[k] if may_seek else None
            if origin is not None:
                try:
                    self._container.seek(origin, stream=self._stream, backward=True)
                except av.error.FFmpegError:
                    may_seek, origin = False, None
            if origin is None:
                self._rewind()
            sought_at = k
            c, s = self._container, self._stream
            cc = s.codec_context
            last = None  # (pts, frame): the last frame out of the decoder since the seek
            demuxed_to = -(2**62)  # largest pts read since the seek
            outcome = "end"
            for packet in c.demux(s):
                if packet.pts is not None:
                    cc.skip_frame = "NONREF" if skipping and packet.pts not in wset else "DEFAULT"
                    demuxed_to = max(demuxed_to, packet.pts)
                for frame in self._decode_packet(packet):
                    fpts = frame.pts
                    if fpts is None:
                        continue
                    if last is None and origin is not None and fpts > origin and fpts > wanted[k]:
                        outcome = "overshoot"  # the seek landed after the keyframe (file without index)
                        break
                    while k < n and wanted[k] <= fpts:
                        if wanted[k] == fpts:
                            yield fpts, frame
                        elif skipping:
                            outcome = "retry"  # the decoder skipped it after all
                            break
                        else:  # the decoder never produced it (corrupt data): use the frame shown then
                            yield wanted[k], self._substitute(wanted[k], last, (fpts, frame), tb)
                        k += 1
                    if outcome == "retry":
                        break
                    last = (fpts, frame)
                if outcome in ("overshoot", "retry"):
                    break
                if k >= n:
                    return
                if may_seek and k > sought_at and needs_seek(start_at[k], demuxed_to):
                    outcome = "seek"  # skip the packets up to the next keyframe we need
                    break
            if outcome == "overshoot":
                logger.debug("%s: a seek overshot; decoding from the start without seeking", self.path)
                may_seek = False
            elif outcome == "retry":
                logger.debug("%s: %s dropped a wanted frame while skipping; decoding without skipping",
                             self.path, cc.name)
                skipping = False
                cc.skip_frame = "DEFAULT"
            elif outcome == "end":
                while k < n:  # the stream ended before these (truncated file)
                    yield wanted[k], self._substitute(wanted[k], last, None, tb)
                    k += 1

    def _decode_counting(self, wanted: list[int]) -> Iterator[tuple[int, object]]:
        """Decode from the start, every frame: the n-th frame out of the decoder has the n-th timestamp.

        For streams without timestamps (``wanted`` are frame numbers) and streams whose timestamps are in
        decoding order; undecodable packets are skipped as in the planned decode.
        """
        self._rewind()
        self._stream.codec_context.skip_frame = "DEFAULT"
        order = self._pts
        k, n = 0, len(wanted)
        count = 0
        last = None
        tb = float(self._stream.time_base) if self._keys is not None else 1.0 / max(self.info.fps, 1e-3)
        for packet in self._container.demux(self._stream):
            for frame in self._decode_packet(packet):
                if count >= len(order):
                    break
                at = int(order[count])
                count += 1
                while k < n and wanted[k] <= at:
                    if wanted[k] == at:
                        yield at, frame
                    else:
                        yield wanted[k], self._substitute(wanted[k], last, (at, frame), tb)
                    k += 1
                last = (at, frame)
                if k >= n:
                    return
        while k < n:  # fewer frames than packets (truncated or corrupt)
            yield wanted[k], self._substitute(wanted[k], last, None, tb)
            k += 1

    def _decode_packet(self, packet, quiet: bool = False) -> list:
        """Frames of one packet; a packet the decoder rejects is skipped (its frame is then missing)."""
        try:
            frames = packet.decode()
        except av.error.FFmpegError as exc:
            if quiet:
                return []
            self._bad_packets += 1
            self._last_decode_error = short_error(exc)
            if self._bad_packets <= 3:
                logger.warning("%s: skipping an undecodable packet at pts %s (%s)", self.path, packet.pts,
                               short_error(exc))
            return []
        if frames:
            self._decoded_any = True
        return frames

    def _substitute(self, want: int, before, after, tb: float):
        for cand in (before, after):
            if cand is not None and abs(cand[0] - want) * tb <= _MAX_SUBSTITUTE_GAP:
                logger.warning("%s: frame at %.3f s could not be decoded; using the one at %.3f s",
                               self.path, want * tb, cand[0] * tb)
                return cand[1]
        why = f" (decoder: {self._last_decode_error})" if self._last_decode_error else ""
        if not self._decoded_any:
            codec = self._stream.codec_context.name
            raise VideoReadError(
                f"{self.path!r}: none of its video frames could be decoded as {codec!r}{why}. The file may be "
                f"corrupt, or its container may name the wrong codec (as HEVC in AVI does): remux or re-encode "
                f"it to mp4 or mkv. {ACCEPTED}"
            )
        have = f"; the last decodable frame is at {before[0] * tb:.2f} s" if before is not None else ""
        raise VideoReadError(
            f"{self.path!r}: no frame could be decoded near {want * tb:.2f} s{have}{why}. The file looks "
            f"truncated or corrupt. {ACCEPTED}"
        )

    def close(self) -> None:
        self._container.close()

