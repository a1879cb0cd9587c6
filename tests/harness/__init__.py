"""Plain helpers behind tests/conftest.py: throwaway servers and the run report."""
