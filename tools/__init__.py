"""Developer tooling that is not part of the Django project (service launchers for tests and `make run`)."""
