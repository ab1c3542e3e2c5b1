"""The allow-list unpickler builds data and refuses every other global before calling it."""

import pickle
from collections import OrderedDict

import numpy as np
import pytest

from tests.payloads import TouchesMarker
from univtg_core import safe_pickle
from univtg_core.errors import UnsafeFileError


def test_plain_data_and_numpy_arrays_round_trip(tmp_path):
    data = [{"qid": "q1", "windows": np.arange(6, dtype=np.int64).reshape(3, 2),
             "score": np.array([0.5, 0.25, 1.0], np.float32), "meta": OrderedDict(a=1.5, b=None)}]
    for protocol in (2, 4, 5):
        path = tmp_path / f"p{protocol}.pkl"
        path.write_bytes(pickle.dumps(data, protocol=protocol))
        back = safe_pickle.load(path)
        assert back[0]["qid"] == "q1" and back[0]["meta"] == OrderedDict(a=1.5, b=None)
        np.testing.assert_array_equal(back[0]["windows"], data[0]["windows"])
        assert back[0]["score"].dtype == np.float32


def test_numpy_scalars_and_object_arrays_load():
    obj = {"x": np.float32(2.5), "o": np.array([1, "a"], dtype=object)}
    back = safe_pickle.load(pickle.dumps(obj, protocol=2))
    assert back["x"] == np.float32(2.5) and back["o"].tolist() == [1, "a"]


def test_a_reduce_payload_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps([{"qid": "q", "x": TouchesMarker(marker)}]))
    with pytest.raises(UnsafeFileError, match=r"posix\.system|nt\.system"):
        safe_pickle.load(path)
    assert not marker.exists()


def test_arrays_are_refused_when_numpy_is_not_allowed():
    with pytest.raises(UnsafeFileError, match="_reconstruct"):
        safe_pickle.load(pickle.dumps(np.zeros(3), protocol=2), numpy=False)


@pytest.mark.parametrize("payload", [b"", b"not a pickle at all", pickle.dumps(list(range(100)))[:-7]])
def test_broken_bytes_give_one_clear_error(payload):
    with pytest.raises(UnsafeFileError, match="not a valid pickle"):
        safe_pickle.load(payload, what="guidance file")


def test_python2_pickles_read_with_latin1():
    # Protocol 2 with a bytes-as-str array buffer, as Python 2 numpy wrote Caffe2 weights.
    raw = pickle.dumps({"blobs": {"conv1_w": np.ones((2, 2), np.float32)}}, protocol=2)
    back = safe_pickle.load(raw, encoding="latin1")
    assert back["blobs"]["conv1_w"].sum() == 4
