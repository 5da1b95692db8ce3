"""Session audio (docs/audio.md): the per-session sound server, capture and Opus encoding on the
session side, decoding, WAV writing and playback on the viewer side."""
