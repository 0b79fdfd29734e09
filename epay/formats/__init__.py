"""The Algérie Poste exchange-file codec: layouts, reader, writer, validator, RIPs, text rules.

Pure logic: no database, network or Airflow. Positions live only in ``schemas/layouts/*.toml``.
"""

from epay.formats.layout import KINDS, FieldSpec, FileLayout, RecordLayout, all_layouts, get_layout
from epay.formats.names import FileName, FileNameError, ack_name, build_file_name, parse_file_name
from epay.formats.problems import FILE_CODES_IN_ORDER, Problem
from epay.formats.reader import (
    InvalidFileError,
    ValidationReport,
    detail_schema,
    parse_file,
    read_file,
    validate_file,
)
from epay.formats.rip import is_valid_rip, mask_rip, rip_from_account, rip_key, rip_problem
from epay.formats.text import normalize_text
from epay.formats.writer import EmptyNameError, EncodeError, FileWriter, WriteResult, write_file

__all__ = [
    "FILE_CODES_IN_ORDER",
    "KINDS",
    "EmptyNameError",
    "EncodeError",
    "FieldSpec",
    "FileLayout",
    "FileName",
    "FileNameError",
    "FileWriter",
    "InvalidFileError",
    "Problem",
    "RecordLayout",
    "ValidationReport",
    "WriteResult",
    "ack_name",
    "all_layouts",
    "build_file_name",
    "detail_schema",
    "get_layout",
    "is_valid_rip",
    "mask_rip",
    "normalize_text",
    "parse_file",
    "parse_file_name",
    "read_file",
    "rip_from_account",
    "rip_key",
    "rip_problem",
    "validate_file",
    "write_file",
]
