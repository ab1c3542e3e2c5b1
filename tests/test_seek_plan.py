"""The PyAV reader's seek planner, on made-up packet indexes: no video, no decoder."""

from __future__ import annotations

from univtg_core.video.seek_plan import SeekGroup, keyframe_before, needs_seek, plan_seeks

# A stream with a keyframe every 30 pts (1 s GOPs at 30 fps, time base 1/30).
KEYS = [0, 30, 60, 90, 120]


def test_keyframe_before():
    assert keyframe_before(KEYS, 0) == 0
    assert keyframe_before(KEYS, 29) == 0
    assert keyframe_before(KEYS, 30) == 30  # a keyframe is its own start
    assert keyframe_before(KEYS, 1000) == 120
    assert keyframe_before(KEYS, -1) is None
    assert keyframe_before([], 5) is None


def test_frames_of_one_gop_share_a_group_and_far_frames_get_their_own():
    plan = plan_seeks([5, 20, 75, 130], KEYS)
    assert plan == (SeekGroup(0, (5, 20)), SeekGroup(60, (75,)), SeekGroup(120, (130,)))


def test_a_keyframe_that_is_wanted_starts_its_group():
    assert plan_seeks([29, 30, 31], KEYS) == (SeekGroup(0, (29,)), SeekGroup(30, (30, 31)))


def test_order_and_duplicates_do_not_matter():
    assert plan_seeks([130, 5, 75, 5, 130], [120, 0, 60, 60]) == plan_seeks([5, 75, 130], KEYS)


def test_frames_before_the_first_keyframe_decode_from_the_start():
    # the stream does not start on a keyframe (cut files), or its index lists none at all
    assert plan_seeks([3, 12, 40], [10, 35]) == (SeekGroup(None, (3,)), SeekGroup(10, (12,)), SeekGroup(35, (40,)))
    assert plan_seeks([3, 50], []) == (SeekGroup(None, (3, 50)),)


def test_nothing_wanted_plans_nothing():
    assert plan_seeks([], KEYS) == ()


def test_one_frame_per_gop_is_one_group_each():
    """Clip frames every 2 s on 1 s GOPs: each wanted frame is its own group, every other GOP skipped."""
    wanted = list(range(15, 150, 60))  # 15, 75, 135
    plan = plan_seeks(wanted, list(range(0, 150, 30)))
    assert [g.keyframe for g in plan] == [0, 60, 120]
    assert [g.wanted for g in plan] == [(15,), (75,), (135,)]


def test_seek_only_when_the_keyframe_was_not_read_yet():
    assert needs_seek(60, demuxed_to=40)  # packets 41..59 would be read for nothing
    assert not needs_seek(60, demuxed_to=60)  # the demuxer has the keyframe: read on
    assert not needs_seek(60, demuxed_to=75)  # B-frame reordering read past it already
    assert not needs_seek(None, demuxed_to=-(2**62))  # nothing to seek to
