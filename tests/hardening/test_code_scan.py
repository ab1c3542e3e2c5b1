"""No call in the checkout runs code from a file, reaches a shell, or exposes a server by default (code_scan)."""

from __future__ import annotations

from .code_scan import scan_source, scan_tree
from .report import Row
from .sandbox import REPO

BAD = '''
import os, pickle, subprocess, torch, numpy as np, yaml, gradio as gr, argparse, joblib
torch.load(path)
torch.load(path, weights_only=False)
torch.load(path, weights_only=flag)
torch.jit.load(path)
pickle.load(f)
pickle.loads(data)
pickle.Unpickler(f).load()
joblib.load(path)
np.load(path, allow_pickle=True)
np.load(path)
yaml.load(text)
eval(text)
os.system(cmd)
subprocess.run(cmd, shell=True)
demo.launch(share=True)
parser.add_argument("--share", action="store_true", default=True)
demo.launch(server_name="0.0.0.0")
'''
GOOD = '''
"""Docs may say 0.0.0.0."""
import os, subprocess, torch, numpy as np, yaml, argparse
torch.load(path, map_location="cpu", weights_only=True)
np.load(path, allow_pickle=False)
yaml.load(text, Loader=yaml.SafeLoader)
model.eval()
subprocess.run(["ffmpeg", "-i", path], shell=False)
demo.launch(share=args.share, server_name="0.0.0.0" if os.environ.get("SPACE_ID") else "127.0.0.1")
parser.add_argument("--host", help="address (0.0.0.0 inside a Space)")
log.info(f"listening on 0.0.0.0 in a Space, else {host}")
'''


def test_the_scan_finds_every_pattern_and_nothing_in_safe_code():
    found = scan_source(BAD, "bad.py")
    calls = [n for n, line in enumerate(BAD.splitlines(), 1) if line and not line.startswith("import")]
    assert [f.line for f in found] == calls, "\n".join(map(str, found))
    assert scan_source(GOOD, "good.py") == []
    on_purpose = "torch.load(path, weights_only=False)  # the unsafe way: the payload runs\n"
    assert scan_source(on_purpose, "tests/t.py", library=False) == []
    assert len(scan_source(on_purpose, "univtg_core/x.py")) == 1  # library code has no pass


def test_the_checkout_has_no_unsafe_call(report, request):
    row = report.add(Row("code scan", "source", "unsafe calls in the checkout",
                         "every .py file: torch.load without weights_only=True, torch.jit.load, pickle/joblib/"
                         "marshal loads, numpy allow_pickle, eval/exec, shell=True, os.system, share=True, "
                         "0.0.0.0 outside a Space", "none", nodeid=request.node.nodeid))
    files, found = scan_tree(REPO)
    row.outcome = f"{files} files, {len(found)} findings" + (f": {found[0]}" if found else "")
    assert files > 100  # the scan saw the checkout
    assert not found, "\n".join(map(str, found))
