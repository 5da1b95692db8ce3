"""A thin cffi layer over libwayland-server, pixman and xkbcommon, with pywayland's protocol tables."""
