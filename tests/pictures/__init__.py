"""Pictures of the service drawn from real runs (not tests): `make dashboard-picture`."""
