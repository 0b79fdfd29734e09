"""The billing side: reading and checking AT's billing extract (no database here)."""

from epay.billing.extract import (
    CheckedExtract,
    ExtractError,
    RowRejection,
    SchemaError,
    check_extract,
    extract_date_of,
    write_extract,
)

__all__ = [
    "CheckedExtract",
    "ExtractError",
    "RowRejection",
    "SchemaError",
    "check_extract",
    "extract_date_of",
    "write_extract",
]
