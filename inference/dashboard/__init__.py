"""The tenant dashboard (overview, usage log, CSV export) and the operator view."""
