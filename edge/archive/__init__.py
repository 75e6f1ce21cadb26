"""Defect images, coil defect maps, retention and export of what the daemon saw."""
