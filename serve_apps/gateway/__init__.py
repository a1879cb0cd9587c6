"""The HTTP edge: FastAPI ingress on Ray Serve."""
