"""Server pools: mDNS discovery, the session directory, redirect and placement (docs/pools.md)."""
