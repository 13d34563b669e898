"""The canonical transaction schema and the column names accepted for it."""

from __future__ import annotations

# Canonical names: the UCI Online Retail ones, used everywhere after loading.
INVOICE = "InvoiceNo"
STOCK_CODE = "StockCode"
DESCRIPTION = "Description"
QUANTITY = "Quantity"
INVOICE_DATE = "InvoiceDate"
UNIT_PRICE = "UnitPrice"
CUSTOMER = "CustomerID"
COUNTRY = "Country"

CANONICAL_COLUMNS = (INVOICE, STOCK_CODE, DESCRIPTION, QUANTITY, INVOICE_DATE, UNIT_PRICE, CUSTOMER, COUNTRY)
REQUIRED_COLUMNS = (INVOICE, STOCK_CODE, QUANTITY, INVOICE_DATE, UNIT_PRICE, CUSTOMER, COUNTRY)

# Online Retail II (UCI id 502) spells three columns differently.
ALIASES = {"Invoice": INVOICE, "Price": UNIT_PRICE, "Customer ID": CUSTOMER}

SUPPORTED_SUFFIXES = (".csv", ".csv.gz", ".txt", ".txt.gz", ".xlsx", ".xlsm", ".parquet", ".pq")
