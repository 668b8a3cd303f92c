"""Scoring: batch scores, alerts, drift, area summaries and the term report."""
