"""Mutation testing of the pure core (make mutate): scores per module and accepted survivors."""
