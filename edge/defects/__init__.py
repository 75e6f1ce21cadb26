"""Probabilities -> defect objects in strip coordinates -> events and coil reports."""
