"""Domain logic: plain functions that need an app context but never a request."""
