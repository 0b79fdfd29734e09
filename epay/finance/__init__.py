"""Finance reports (issue #7): the settlement summary, the reconciliation with the RELV statements, and
their downloads (CSV, XLSX, Parquet, JSON). Amounts are int centimes; DZD only when presented."""
