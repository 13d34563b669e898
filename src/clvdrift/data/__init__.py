"""Transactions: load and validate, keep the history, clean, simulate drift scenarios."""

from clvdrift.data.clean import CleaningReport, DateOutliers, clean_transactions
from clvdrift.data.history import HistoryBatch, TransactionHistory
from clvdrift.data.load import load_transactions, validate_amounts
from clvdrift.data.scenarios import SCENARIOS, simulate_scenario

__all__ = [
    "SCENARIOS",
    "CleaningReport",
    "DateOutliers",
    "HistoryBatch",
    "TransactionHistory",
    "clean_transactions",
    "load_transactions",
    "simulate_scenario",
    "validate_amounts",
]
