"""QUIC endpoints (aioquic), TLS identity, server pinning (TOFU or fixed), optional mutual TLS."""
