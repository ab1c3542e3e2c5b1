"""The Gradio page: its components and which handler each event runs.

`build_demo` builds everything from its arguments and nothing happens at import. One `Grounder` is shared
by every user; what belongs to one browser session (its output folder) lives in `gr.State`. What the events
do is in `app.handlers`, the page's CSS and player script in `app/static/` (read by `app.assets`).

The one public endpoint is `/predict` (video, text="", image=None, coarse_top_k="auto") -> predictions,
moments, saliency_curve, highlight_and_summary_points, summary_video, downloads, status, saliency_per_clip
(`view_api()` derives these names from the output components' labels); every other event is private (UI only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from . import builders, handlers, long_view
from .assets import Assets, load_assets
from .components import query_image
from .examples import load_examples
from .session import SessionStore
from .storage import DiskBudget


def theme() -> gr.themes.Base:
    return gr.themes.Soft(primary_hue="blue", secondary_hue="orange", neutral_hue="slate")


def _limit_text(max_duration: float | None) -> str:
    if not max_duration:
        return ""
    return f" Videos up to {builders.format_length(max_duration)}."


def _banners(grounder: Any) -> None:
    from univtg_core import results_are_meaningful  # the pipeline (torch) loads with the model, not at import

    if not results_are_meaningful(grounder):
        gr.Markdown(
            "⚠️ **Random CLIP weights (`--clip-weights random`): results are meaningless.** This mode is for "
            "tests; image queries still find frames of the same colour.",
            elem_id="banner-random",
        )
    if grounder.mode == "zero-shot":
        gr.Markdown(
            "**Zero-shot mode:** no UniVTG checkpoint was loaded (start with `--resume CKPT` for the trained "
            "model). Moments come from CLIP similarity between the query and each clip.",
            elem_id="banner-mode",
        )
    else:
        gr.Markdown(
            f"**UniVTG model loaded** · clips of {grounder.clip_len:g} s.",
            elem_id="banner-mode",
        )


def build_demo(
    grounder: Any,
    max_duration: float | None = None,
    examples_dir: str | Path | None = None,
    sessions: SessionStore | None = None,
    gpu_seconds: int = 120,
    assets: Assets | None = None,
    options: handlers.PageOptions | None = None,
    budget: DiskBudget | None = None,
) -> gr.Blocks:
    """The whole page around one shared `grounder` (see `univtg_core.Grounder`).

    `max_duration` is only shown to the user (the grounder enforces it); `examples_dir` holds
    `examples.json` and its files; `sessions` owns the per-session output folders; `assets` are the static
    files (read from `app/static/` when not given; `launch` needs their CSS too); `options` say how results
    are shown (nested moments folded or dropped, how many rows); `budget` pins what running queries use.
    """
    sessions = sessions or SessionStore()
    assets = assets or load_assets()
    options = options or handlers.PageOptions()
    examples = load_examples(examples_dir) if examples_dir else []
    queries = handlers.QueryHandler(grounder, sessions, gpu_seconds, options=options, budget=budget)

    with gr.Blocks(title="UniVTG · find moments in a video", analytics_enabled=False,
                   delete_cache=(3600, 6 * 3600)) as demo:
        session_state = gr.State(None, time_to_live=6 * 3600, delete_callback=sessions.close)
        segment = gr.JSON(visible=False)  # [start, end, row, play] for the player script (UI only)

        gr.Markdown(
            "# UniVTG · find moments in a video\n"
            "Upload a video, describe a moment in words or with an example image, and get the best moments, "
            "the saliency curve, highlights and a short summary." + _limit_text(max_duration),
            elem_id="app-title",
        )
        _banners(grounder)

        # Results first (not yet placed) so the examples in the left column can name them as outputs. Their
        # labels are the names `view_api()` gives the endpoint's outputs (lower-cased, spaces as `_`: README's
        # gradio_client example unpacks them by these names), so they stay short; what the page says about
        # each is in the headings placed with them.
        status = gr.Markdown("", label="Status", elem_id="status",
                             render=False)
        table = gr.Dataframe(
            headers=builders.TABLE_HEADERS,
            datatype=builders.TABLE_DATATYPES,
            label="Moments",
            show_label=False,
            interactive=False,
            wrap=True,
            max_height=360,
            elem_id="moments",
            column_widths=["7%", "16%", "16%", "17%", "16%", "28%"],
            render=False,
        )
        plot = gr.Image(label="Saliency curve", show_label=False,
                        type="filepath", interactive=False, elem_id="saliency", buttons=["download", "fullscreen"],
                        render=False)
        curve = gr.LinePlot(x="time", y="saliency", x_title="drag a range to play it (times: see the curve tab)",
                            y_title="saliency", height=220, elem_id="curve", label="Saliency per clip",
                            x_axis_labels_visible=False, tooltip=["at"], render=False)
        # UI only: the stretch around what plays at one point per clip (app/long_view.py)
        zoom_curve = gr.LinePlot(x="time", y="saliency", x_title="drag a range to play it", y_title="saliency",
                                 height=220, elem_id="zoom-curve", label="Zoom on what plays (one point per clip)",
                                 x_axis_labels_visible=False, tooltip=["at"], render=False)
        gallery = gr.Gallery(label="Highlight and summary points", show_label=False, columns=6, height="auto",
                             object_fit="cover", elem_id="points", allow_preview=False, buttons=[],
                             render=False)
        summary_video = gr.Video(label="Summary video", show_label=False, interactive=False,
                                 elem_id="summary-video", height=240, render=False)
        summary_note = gr.Markdown("", elem_id="summary-caption", render=False)  # UI only: points, length
        downloads = gr.File(label="Downloads",
                            file_count="multiple", interactive=False, elem_id="downloads", render=False)
        result_json = gr.JSON(label="Predictions", elem_id="result-json", render=False)
        data_outputs = [result_json, table, plot, gallery, summary_video, downloads, status, curve]

        with gr.Row(equal_height=False, elem_id="columns"):
            with gr.Column(scale=5, min_width=340):
                video = gr.File(label="Video", file_count="single", file_types=["video"], type="filepath",
                                elem_id="upload", height=90)
                player = gr.Video(label="Player", interactive=False, elem_id="player", height=320,
                                  buttons=["download"])
                text = gr.Textbox(value="", label="Text query",
                                  placeholder="e.g. a person opens the door  (Enter to search)", lines=1,
                                  max_lines=2, max_length=options.max_query_chars, elem_id="query-text")
                image = query_image(label="Example image (optional)", type="filepath", height=150,
                                   sources=["upload", "clipboard"], elem_id="query-image")
                with gr.Row():
                    submit = gr.Button("Find moments", variant="primary", elem_id="submit")
                    gr.ClearButton(value="Clear query", components=[text, image], elem_id="clear-query")
                with gr.Accordion("Advanced options", open=False, elem_id="advanced"):
                    # The windows of a long video the model reads (coarse-to-fine); auto is the core's rule.
                    windows = gr.Dropdown(
                        choices=list(dict.fromkeys([*handlers.WINDOW_CHOICES, options.coarse_top_k])),
                        value=options.coarse_top_k, allow_custom_value=True,
                        label="Windows to search", elem_id="coarse-top-k",
                        info="auto: every window of a video up to 16 windows (about 20 min with a model), the 8 "
                             "best beyond (or the model's own number); all: every window; or a number. "
                             "Zero-shot reads every clip unless a number is given.")
                example_block = None
                if examples:
                    example_block = gr.Examples(
                        examples=[[e["video"], e["text"], e["image"]] for e in examples],
                        example_labels=[e["label"] for e in examples],
                        inputs=[video, text, image],
                        # Not the interactive curve: Gradio's cached LinePlot value breaks the plot once a
                        # range was dragged on it; `cue_example` draws the curve from the result instead.
                        outputs=data_outputs[:-1],
                        fn=queries.predict_example,
                        # Cached so that a Space answers examples at once. "lazy" caches each example on
                        # its first use, shared by all users from then on, so start-up does not wait for
                        # every example to be indexed ("eager" would, for minutes on a CPU Space).
                        cache_examples=True,
                        cache_mode="lazy",
                        label="Examples: bundled videos with queries",
                        examples_per_page=8,
                        elem_id="examples",
                    )
            with gr.Column(scale=7, min_width=340):
                status.render()
                gr.Markdown("**Moments** (each event once; choose a row to play it)", elem_id="moments-title")
                table.render()
                with gr.Tabs():
                    with gr.Tab("Saliency curve"):
                        plot.render()
                    with gr.Tab("Interactive curve"):  # its axis title says: drag a range to play it
                        curve.render()
                        zoom_curve.render()
                gr.Markdown("**Highlight and summary points** (choose one to play it)", elem_id="points-title")
                gallery.render()
                summary_note.render()
                summary_video.render()
                downloads.render()
                with gr.Accordion("Predictions as JSON (what the API returns)", open=False):
                    result_json.render()

        event = gr.on(
            triggers=[submit.click, text.submit],
            fn=queries.predict,
            inputs=[video, text, image, windows, session_state],
            outputs=[*data_outputs, session_state],
            api_name="predict",
            show_progress_on=[status],  # one place for progress and for the one error message
            concurrency_id="model",  # every query shares the queue's limit on the one model
        )
        # UI only, kept out of the API and out of the model's queue: show a new upload in the player (a
        # playable copy when needed, with progress); cue the player at the top moment once the answer is
        # there; play a chosen row, gallery point or dragged range and mark it on the curve.
        ui_only = dict(api_visibility="private", concurrency_limit=None)
        player_js = dict(fn=None, inputs=[segment], js=assets.play_segment_js, **ui_only)
        zoomed = dict(fn=long_view.zoomed_curve, inputs=[result_json, segment], outputs=[zoom_curve],
                      show_progress="hidden", **ui_only)
        for trigger in (video.upload, video.clear):
            trigger(queries.prepare_player, inputs=[video, session_state],
                    outputs=[player, session_state, *data_outputs, summary_note], show_progress_on=[player],
                    **ui_only).then(**zoomed)
        cued = dict(outputs=[player, segment, plot, summary_note], show_progress="hidden", **ui_only)
        event.success(queries.cue_top, inputs=[result_json, session_state], **cued).then(**player_js).then(**zoomed)
        if example_block is not None and example_block.cache_event is not None:
            example_block.cache_event.then(queries.cue_example,
                                           inputs=[video, text, image, result_json, session_state],
                                           **{**cued, "outputs": [*cued["outputs"], curve, status]}).then(
                                               **player_js).then(**zoomed)
        picked = dict(outputs=[player, segment, plot], show_progress="hidden", **ui_only)
        for source, pick in ((table, queries.pick_row), (gallery, queries.pick_point),
                             (curve, queries.pick_range), (zoom_curve, queries.pick_range)):
            source.select(pick, inputs=[result_json, session_state], **picked).then(**player_js).then(**zoomed)
        demo.unload(queries.end_session)
    return demo
