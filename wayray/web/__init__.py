"""The browser kiosk (docs/web-kiosk.md): the page wrsrvd serves over HTTPS, and WebTransport over
HTTP/3 carrying the wire protocol to the front door's viewer side, like a native kiosk's QUIC.

``pages`` serves the static page and ``/web.json``; ``transport`` is the HTTP/3 endpoint whose
WebTransport sessions are wire connections; ``certs`` makes and rotates the short-lived certificate
browsers pin by hash; ``door`` puts them together for wrsrvd.
"""
