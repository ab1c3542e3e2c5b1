"""The app's flags: a feature film fits by default, a Space lowers the limits with variables, bad sizes are refused."""

from __future__ import annotations

import pytest

from app.cli import build_parser


def test_defaults_take_a_film(monkeypatch):
    for name in ("UNIVTG_MAX_DURATION", "UNIVTG_MAX_FILE_SIZE", "UNIVTG_DISK_BUDGET", "UNIVTG_CLIENT_BUDGET",
                 "UNIVTG_NESTED_MOMENTS", "SPACE_ID"):
        monkeypatch.delenv(name, raising=False)
    args = build_parser().parse_args([])
    assert args.max_duration >= 4 * 3600
    assert (args.max_file_size, args.disk_budget, args.client_budget) == ("2gb", "20gb", "4gb")
    assert args.nested_moments == "fold" and args.trust_proxy is False


def test_a_space_sets_its_limits_with_variables(monkeypatch):
    monkeypatch.setenv("UNIVTG_MAX_DURATION", "1800")
    monkeypatch.setenv("UNIVTG_DISK_BUDGET", "5gb")
    monkeypatch.setenv("UNIVTG_CLIENT_BUDGET", "500mb")
    monkeypatch.setenv("UNIVTG_NESTED_MOMENTS", "drop")
    monkeypatch.setenv("SPACE_ID", "someone/univtg")
    args = build_parser().parse_args([])
    assert (args.max_duration, args.disk_budget, args.client_budget) == (1800.0, "5gb", "500mb")
    assert args.nested_moments == "drop" and args.trust_proxy is True  # a Space's proxy sets X-Forwarded-For
    assert build_parser().parse_args(["--max-duration", "600", "--no-trust-proxy"]).trust_proxy is False


def test_a_size_that_is_not_one_stops_start_up(capsys):
    from app.cli import main

    with pytest.raises(SystemExit) as stopped:
        main(["--disk-budget", "lots"])
    assert stopped.value.code == 2 and "not a size: 'lots'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--nested-moments", "hide"])


def test_the_windows_to_search_default_is_a_flag_and_nonsense_stops_start_up(monkeypatch, capsys):
    from types import SimpleNamespace

    from app.cli import main
    from app.handlers import PageOptions
    from app.layout import build_demo

    monkeypatch.delenv("UNIVTG_COARSE_TOP_K", raising=False)
    assert build_parser().parse_args([]).coarse_top_k == "auto"
    monkeypatch.setenv("UNIVTG_COARSE_TOP_K", "12")
    assert build_parser().parse_args([]).coarse_top_k == "12"
    with pytest.raises(SystemExit) as stopped:
        main(["--coarse-top-k", "many"])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and "--coarse-top-k must be 'auto', 'all' or a whole number" in err
    # the page's control and the API's default follow the flag
    grounder = SimpleNamespace(encoder=SimpleNamespace(is_random=True), mode="zero-shot", clip_len=2.0)
    info = build_demo(grounder, options=PageOptions(coarse_top_k="12")).get_api_info()
    (windows,) = [p for p in info["named_endpoints"]["/predict"]["parameters"] if p["parameter_name"] == "coarse_top_k"]
    assert windows["parameter_default"] == "12"
