"""The Gradio page: its components and which handler each event runs.

`build_demo` builds everything from its arguments and nothing happens at import. One `Grounder` is shared
by every user; what belongs to one browser session (its output folder) lives in `gr.State`. What the events
do is in `app.handlers`, the page's CSS and player script in `app/static/` (read by `app.assets`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from . import builders, handlers
from .assets import Assets, load_assets
from .examples import load_examples
from .session import SessionStore


def theme() -> gr.themes.Base:
    return gr.themes.Soft(primary_hue="blue", secondary_hue="orange", neutral_hue="slate")


def _limit_text(max_duration: float | None) -> str:
    if not max_duration:
        return ""
    return f" Videos up to {builders.format_duration(max_duration)}."


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
) -> gr.Blocks:
    """The whole page around one shared `grounder` (see `univtg_core.Grounder`).

    `max_duration` is only shown to the user (the grounder enforces it); `examples_dir` holds
    `examples.json` and its files; `sessions` owns the per-session output folders; `assets` are the static
    files (read from `app/static/` when not given; `launch` needs their CSS too).
    """
    sessions = sessions or SessionStore()
    assets = assets or load_assets()
    examples = load_examples(examples_dir) if examples_dir else []
    queries = handlers.QueryHandler(grounder, sessions, gpu_seconds)

    with gr.Blocks(title="UniVTG · find moments in a video", analytics_enabled=False,
                   delete_cache=(3600, 6 * 3600)) as demo:
        session_state = gr.State(None, time_to_live=6 * 3600, delete_callback=sessions.close)
        segment = gr.JSON(visible=False)  # [start, end] of what the player should play next (UI only)

        gr.Markdown(
            "# UniVTG · find moments in a video\n"
            "Upload a video, describe a moment in words or with an example image, and get the best moments, "
            "the saliency curve, highlights and a short summary." + _limit_text(max_duration),
            elem_id="app-title",
        )
        _banners(grounder)

        # Results first (not yet placed) so the examples in the left column can name them as outputs.
        table = gr.Dataframe(
            headers=builders.TABLE_HEADERS,
            datatype=builders.TABLE_DATATYPES,
            label="Top moments (choose a row to play it)",
            interactive=False,
            wrap=True,
            max_height=330,
            elem_id="moments",
            column_widths=["7%", "13%", "13%", "14%", "13%", "40%"],
            render=False,
        )
        plot = gr.Image(label="Saliency over the video", show_label=False, type="filepath", interactive=False,
                        elem_id="saliency", buttons=["download", "fullscreen"], render=False)
        curve = gr.LinePlot(x="time", y="saliency", x_title="time (s)", y_title="saliency", height=240,
                            elem_id="curve", label="Saliency per clip", render=False)
        gallery = gr.Gallery(label="Highlight and summary points (choose one to play it)", columns=6, height="auto",
                             object_fit="cover", elem_id="points", format="jpeg", allow_preview=False,
                             render=False)
        downloads = gr.File(label="Downloads: predictions (JSON), top moment (mp4), summary (mp4)",
                            file_count="multiple", interactive=False, elem_id="downloads", render=False)
        result_json = gr.JSON(label="Predictions", elem_id="result-json", render=False)
        status = gr.Markdown("", elem_id="status", render=False)
        data_outputs = [result_json, table, plot, gallery, downloads, status, curve]

        with gr.Row(equal_height=False):
            with gr.Column(scale=5, min_width=360):
                player = gr.Video(label="Video", sources=["upload"], elem_id="player", height=340,
                                  include_audio=True)
                text = gr.Textbox(label="Text query", placeholder="e.g. a person opens the door  (Enter to search)",
                                  lines=1, max_lines=2, max_length=300, elem_id="query-text")
                image = gr.Image(label="Example image (optional)", type="filepath", height=150,
                                 sources=["upload", "clipboard"], elem_id="query-image")
                with gr.Row():
                    submit = gr.Button("Find moments", variant="primary", elem_id="submit")
                    gr.ClearButton(value="Clear query", components=[text, image])
                status.render()
                if examples:
                    gr.Examples(
                        examples=[[e["video"], e["text"], e["image"]] for e in examples],
                        example_labels=[e["label"] for e in examples],
                        inputs=[player, text, image],
                        outputs=data_outputs,
                        fn=queries.predict_example,
                        # Cached so that a Space answers examples at once. "lazy" caches each example on
                        # its first use, shared by all users from then on, so start-up does not wait for
                        # every example to be indexed ("eager" would, for minutes on a CPU Space).
                        cache_examples=True,
                        cache_mode="lazy",
                        label="Examples: bundled videos with queries",
                        examples_per_page=8,
                    )
            with gr.Column(scale=7, min_width=420):
                table.render()
                with gr.Tabs():
                    with gr.Tab("Saliency curve"):
                        plot.render()
                    with gr.Tab("Interactive curve (drag a range to play it)"):
                        curve.render()
                gallery.render()
                downloads.render()
                with gr.Accordion("Predictions as JSON (the core's format)", open=False):
                    result_json.render()

        event = gr.on(
            triggers=[submit.click, text.submit],
            fn=queries.predict,
            inputs=[player, text, image, session_state],
            outputs=[*data_outputs, session_state],
            api_name="predict",
            show_progress_on=[status, table],
            concurrency_id="model",  # every query shares the queue's limit on the one model
        )
        # UI only, kept out of the API and out of the model's queue (they are instant): cue the player at the
        # top moment once the answer is there; play a chosen row, gallery point or dragged range.
        ui_only = dict(api_visibility="private", show_progress="hidden", concurrency_limit=None)
        event.success(handlers.seek_top, inputs=[result_json], outputs=[player], **ui_only)
        for source, pick in ((table, handlers.pick_row), (gallery, handlers.pick_point),
                             (curve, handlers.pick_range)):
            source.select(pick, inputs=[result_json], outputs=[player, segment], **ui_only).then(
                None, inputs=[segment], js=assets.play_segment_js, **ui_only
            )
        demo.unload(queries.end_session)
    return demo
