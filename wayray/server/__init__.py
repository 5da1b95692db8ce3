"""wrsrvd, the front door: QUIC listener, session registry, link to session compositors, admin socket."""
