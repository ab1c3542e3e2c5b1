#!/usr/bin/env bash
# Runs the pixel-path regression tests (tests/test_avfilter.py: our frames against the bundled ffmpeg running
# the official extractors' command line; tests/test_video.py: the clip reader's seeks, skips, rotations and
# refusals) under other PyAV releases, each in a throw-away venv in $TMPDIR that sees this environment's
# other packages; tests/test_slowfast.py's fast tests come along (probing and frame hashes). This is how the
# `av` range in requirements.txt was checked.
#   bash scripts/check_pyav_versions.sh [VERSION ...]     (default: the two ends of the pinned range)
set -euo pipefail
cd "$(dirname "$0")/.."
versions=("$@")
if [[ ${#versions[@]} -eq 0 ]]; then versions=(12.0.0 18.1.0); fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
status=0
for v in "${versions[@]}"; do
  python -m venv --system-site-packages "$root/av$v"
  "$root/av$v/bin/python" -m pip install -q --no-deps "av==$v"
  echo "== PyAV $("$root/av$v/bin/python" -c 'import av; print(av.__version__, av.library_versions["libavfilter"])')"
  "$root/av$v/bin/python" -m pytest -q -p no:cacheprovider tests/test_avfilter.py tests/test_video.py tests/test_slowfast.py \
    -m "not slow" || status=1
done
exit "$status"
