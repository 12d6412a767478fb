"""Test videos: synthetic clips with known content (synthetic) and damaged files (mutants)."""
