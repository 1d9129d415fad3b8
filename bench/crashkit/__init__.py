"""The parts of bench/crash_test.py (its docstring says what it does)."""
