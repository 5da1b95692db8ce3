"""The WayRay wire protocol, sans-IO: messages, framing, version and capability negotiation.

No sockets and no clocks here: time is passed in, bytes and events come out (as aioquic's
QuicConnection does), so every part is testable and fuzzable without a network.
"""
