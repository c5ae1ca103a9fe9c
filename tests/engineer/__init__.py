"""Tests of the engineers' view: health, rules, timing history, event log, API, dashboard."""
