"""Frame encoders and decoders: lossless tiles + zstd, H.264 through PyAV, cursor, checksums. No I/O."""
