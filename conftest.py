"""Makes the checkout importable for tests run without an install."""
