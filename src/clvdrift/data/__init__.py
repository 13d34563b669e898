"""Transactions: load and validate, clean, simulate drift scenarios."""

from clvdrift.data.clean import CleaningReport, DateOutliers, clean_transactions
from clvdrift.data.load import load_transactions, validate_amounts
from clvdrift.data.scenarios import SCENARIOS, simulate_scenario

__all__ = [
    "SCENARIOS",
    "CleaningReport",
    "DateOutliers",
    "clean_transactions",
    "load_transactions",
    "simulate_scenario",
    "validate_amounts",
]
