"""The session compositor: surfaces, xdg-shell, layer-shell, seat, output, data device, WM, frame pump."""
