"""Data-quality checks: Great Expectations suites kept as data, and the gate before a PRLV file is written.

Importing this package is cheap: Great Expectations itself is imported on the first validation.
"""

from epay.quality.runner import ExpectationOutcome, SuiteError, SuiteResult, load_suite_spec, validate_frame

__all__ = ["ExpectationOutcome", "SuiteError", "SuiteResult", "load_suite_spec", "validate_frame"]
