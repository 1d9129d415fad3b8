"""The parts of bench/benchmark.py (bench/README.md says what it measures)."""
