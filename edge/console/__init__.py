"""The inspection console (`edge console`): a read-only web page over the daemon's MQTT topics
and the image archive, in its own process so that a crash of the page never touches inspection."""

# edge/config.py imports console/config.py part-way through (after Section exists); loading
# edge.config first keeps that order whichever module a caller imports first.
import edge.config  # noqa: E402, F401
