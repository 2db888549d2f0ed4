"""Code shared by test modules (and bench/generation.py), so that no test module imports another: a test
module's import runs its collection-time code and makes pytest's discovery order matter.

``tests/`` is on ``sys.path`` (``pythonpath`` in pyproject's pytest config), so these are imported as
``helpers.<module>``.
"""
