"""The HTTP edge: Mesos v1 APIs and operator endpoints."""
