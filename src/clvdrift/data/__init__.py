"""Transactions: load and validate, clean, simulate drift scenarios."""

from clvdrift.data.clean import CleaningReport, clean_transactions
from clvdrift.data.load import load_transactions
from clvdrift.data.scenarios import SCENARIOS, simulate_scenario

__all__ = ["SCENARIOS", "CleaningReport", "clean_transactions", "load_transactions", "simulate_scenario"]
