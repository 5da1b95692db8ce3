"""wrclient, the thin client: display backends, input, token sources, reconnect."""
