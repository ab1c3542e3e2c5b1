"""Hardening checks that live with the code they check (the feature store's faults, the app's server), as rows
of the hardening summary.

Their tests stay where they are; when they run in the same session as ``tests/hardening`` (README says how),
the summary gets one row per test with the test's own outcome and duration. A test that did not run in the
session gets no row, so the table never claims what this run did not see.
"""

from __future__ import annotations

from .report import Row

# (test file::function, area, group, case, what was tried, what must happen)
CHECKS: tuple[tuple[str, str, str, str, str, str], ...] = (
    ("tests/test_feature_store.py::test_a_truncated_or_corrupted_entry_is_detected_and_removed", "faults",
     "feature store", "damaged entry", "a cached entry truncated, a byte flipped, its metadata edited",
     "detected by the checksum, removed, never served"),
    ("tests/test_feature_store.py::test_damaged_rows_of_a_partial_entry_are_computed_again", "faults",
     "feature store", "damaged partial rows", "rows of a resumable entry damaged on disk", "computed again"),
    ("tests/test_feature_store.py::test_a_process_killed_while_writing_leaves_nothing_read_as_complete",
     "faults", "feature store", "killed writer", "the writing process killed (SIGKILL) mid-entry",
     "nothing read as complete"),
    ("tests/test_feature_store.py::test_a_full_disk_gives_a_clear_message_and_no_partial_entry", "faults",
     "feature store", "full disk", "the disk fills while an entry is written", "StoreFullError, no partial entry"),
    ("tests/test_feature_store.py::test_two_processes_writing_one_entry_at_once_stay_consistent", "faults",
     "feature store", "two writers", "two processes write one entry at once", "one consistent entry (lock, "
     "atomic replace)"),
    ("tests/test_index_resume.py::test_indexing_memory_is_bounded_and_a_killed_index_resumes", "faults",
     "indexing", "killed index", "an indexing process killed part-way", "memory bounded; the index resumes"),
    ("tests/test_index_resume.py::test_a_damaged_entry_is_rebuilt_not_trusted", "faults", "indexing",
     "damaged index entry", "an index entry damaged on disk", "rebuilt, not trusted"),
    ("tests/test_index_resume.py::test_two_indexers_of_one_file_at_once_compute_it_once", "faults", "indexing",
     "two indexers", "two indexers of one file at once", "computed once, no corruption"),
    ("tests/test_index_resume.py::test_a_broken_file_leaves_no_entry", "faults", "indexing", "broken file",
     "indexing a broken video", "no entry left"),
    ("tests/test_app_load.py::test_twenty_clients_at_concurrency_1", "app", "load", "20 clients, --concurrency 1",
     "20 gradio_client sessions on 127.0.0.1, new and cached videos with known answers",
     "every request answered, none another session's result, memory bounded"),
    ("tests/test_app_load.py::test_twenty_clients_at_concurrency_4", "app", "load", "20 clients, --concurrency 4",
     "20 gradio_client sessions on 127.0.0.1, new and cached videos with known answers",
     "every request answered, none another session's result, memory bounded"),
    ("tests/test_app_client.py::test_bad_input_is_one_clear_error_and_the_server_keeps_serving", "app", "API",
     "bad input", "broken files and queries through the app's API", "one clear error; the server keeps serving"),
    ("tests/test_app_client.py::test_queries_are_logged_bounded_and_escaped", "app", "API", "query logs",
     "long and control-character queries through the API", "logged bounded and escaped"),
    ("tests/test_app_client.py::test_uploads_over_the_size_or_the_budget_are_refused_with_a_message", "app",
     "files", "upload limits", "uploads over the size or the disk budget", "refused with a message"),
    ("tests/test_app_client.py::test_only_the_apps_own_files_are_served", "app", "files", "file serving",
     "other sessions' files, traversal, absolute paths through the file route", "only the app's own files served"),
    ("tests/test_app_serving.py::test_the_file_route_serves_only_files_inside_the_roots", "app", "files",
     "file route paths", "traversal, absolute, links, NUL, URLs as file paths", "only files inside the roots"),
    ("tests/test_app_serving.py::test_the_total_budget_removes_the_oldest_files_first", "app", "files",
     "disk budget", "uploads and outputs past the total budget", "oldest removed first"),
    ("tests/test_app_serving.py::test_one_client_keeps_at_most_its_limit_its_oldest_uploads_going_first", "app",
     "files", "per-client limit", "one client uploading past its limit", "its oldest uploads go first"),
    ("tests/test_app_playable.py::test_the_player_gets_a_copy_and_the_query_keeps_the_original", "app", "player",
     "unplayable upload", "a video the browser cannot play", "an H.264/AAC copy for the player, the original "
     "for the features"),
)


def rows_from_reports(reports) -> list[tuple[Row, float]]:
    """(row with its verdict, seconds) for each test of CHECKS among ``reports`` (pytest TestReports)."""
    out = []
    wanted = {check[0]: check for check in CHECKS}
    for rep in reports:
        if rep.when != "call" and not (rep.when == "setup" and rep.outcome != "passed"):
            continue
        base, _, param = rep.nodeid.partition("[")
        check = wanted.get(base)
        if check is None:
            continue
        _, area, group, case, tried, expected = check
        if hasattr(rep, "wasxfail"):
            verdict = f"known bug: {rep.wasxfail}" if rep.outcome == "skipped" else "FIXED, remove the xfail"
        elif rep.outcome == "passed":
            verdict = "held"
        elif rep.outcome == "skipped":
            reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
            verdict = f"skipped: {reason.removeprefix('Skipped: ')}"
        else:
            verdict = "FAILED"
        label = f"{case} [{param.rstrip(']')}]" if param else case
        outcome = f"{rep.outcome} in {rep.duration:.1f} s"
        if rep.failed:  # the assertion's first line says what went wrong
            errors = [ln[1:].strip() for ln in str(rep.longreprtext).splitlines() if ln.startswith("E ")]
            outcome += f": {errors[0][:160]}" if errors else ""
        out.append((Row(area, group, label, tried, expected, outcome, nodeid=rep.nodeid, verdict=verdict),
                    rep.duration))
    return out
