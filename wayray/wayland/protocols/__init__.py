"""Protocol tables: pywayland's generated modules, plus ``generated/`` for protocols it does not ship.

pywayland 0.4.19 ships wayland core, xdg-shell, xdg-output, xdg-decoration, viewporter, cursor-shape,
primary selection and about 50 more as ``pywayland.protocol.*``. The XML of anything else lives in
``xml/`` and ``regenerate.py`` turns it into ``generated/`` with pywayland's scanner.
"""
