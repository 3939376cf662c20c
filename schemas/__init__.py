"""pandera schemas for import_order / update-order rows. Imports nothing from ``pipeline``."""

from schemas.import_order import (
    CHECK_MESSAGES,
    check_rule,
    import_order_schema,
    update_order_schema,
)
from schemas.params import (
    ADDRESS_FIELDS,
    ADDRESS_PREFIXES,
    CANCELLATION_REASONS,
    COUNTRY_CODES,
    IMPORT_ORDER_PARAMS,
    IMPORT_STATUSES,
    INTEGER_PARAMS,
    ORDER_STATUSES,
    REQUIRED_IMPORT_PARAMS,
    STATE_CODE_COUNTRIES,
    TIMESTAMP_PARAMS,
    UPDATE_ORDER_PARAMS,
    VALIDATION_STATUSES,
    ParamSpec,
    dotted_name,
    form_name,
)

__all__ = [
    "ADDRESS_FIELDS",
    "ADDRESS_PREFIXES",
    "CANCELLATION_REASONS",
    "CHECK_MESSAGES",
    "COUNTRY_CODES",
    "IMPORT_ORDER_PARAMS",
    "IMPORT_STATUSES",
    "INTEGER_PARAMS",
    "ORDER_STATUSES",
    "REQUIRED_IMPORT_PARAMS",
    "STATE_CODE_COUNTRIES",
    "TIMESTAMP_PARAMS",
    "UPDATE_ORDER_PARAMS",
    "VALIDATION_STATUSES",
    "ParamSpec",
    "check_rule",
    "dotted_name",
    "form_name",
    "import_order_schema",
    "update_order_schema",
]
