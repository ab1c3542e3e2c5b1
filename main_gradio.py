"""Web app entry point (also a Hugging Face Space's `app_file`): `python main_gradio.py --help`."""

from app.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
