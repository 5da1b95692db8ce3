"""The session process: one headless compositor per session, its encoder and flow control, and its
link to wrsrvd (``wrsrvd session``). See docs/link.md."""
