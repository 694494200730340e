"""A user function that fails on purpose, shared by the operator tests."""

POISON = 13


class Boom:
    """Raises on the poison value, keeping each exception it raised."""

    def __init__(self):
        self.raised = []

    def __call__(self, value):
        if value == POISON:
            exc = ValueError(f"poisoned by {value}")
            self.raised.append(exc)
            raise exc
        return value
