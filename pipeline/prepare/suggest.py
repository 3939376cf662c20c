"""Starter mapping files (``mapping init``): presets, or headers matched to import_order params.

Fuzzy: case, accents, spaces and punctuation are ignored, ``#``/``No`` read as "number", and
common legacy synonyms in English, German, French, Spanish and Dutch (``Order #``,
``Rechnungsnummer``, ``Code postal``, ``Fecha de pedido``, ``Besteldatum``) are known. Date
formats are sniffed from the data (day/month ambiguity is flagged), and status values whose
target is obvious are pre-filled. Presets are TOML files shipped in ``prepare/presets/``.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources

from pipeline.errors import ConfigError

DATE_FORMATS: tuple[str, ...] = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%d/%m/%Y",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y",
    "%d.%m.%y",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d",
    "%d-%m-%Y %H:%M",
    "%d-%m-%Y",
)
"""Candidates for ``mapping init``; day-first wins over month-first when both fit every sample."""

SYNONYMS: dict[str, str] = {
    "ordernumber": "document_number",
    "orderserial": "document_number",
    "documentnumber": "document_number",
    "orderid": "id",
    "invoicenumber": "invoice_id",
    "invoice": "invoice_id",
    "invoiceref": "invoice_id",
    "orderstatus": "status",
    "state": "status",
    "orderdate": "order_date",
    "date": "order_date",
    "orderedon": "order_date",
    "shipdate": "shipping_date",
    "shippingdate": "shipping_date",
    "shipby": "shipping_date",
    "created": "created_at",
    "createddate": "created_at",
    "createdon": "created_at",
    "shippedon": "shipped_at",
    "shippeddate": "shipped_at",
    "deliveredon": "delivered_at",
    "deliverydate": "delivered_at",
    "delivereddate": "delivered_at",
    "cancelledon": "cancelled_at",
    "cancelleddate": "cancelled_at",
    "canceledat": "cancelled_at",
    "customer": "customer_id",
    "customernumber": "customer_id",
    "subscription": "subscription_id",
    "tracking": "tracking_id",
    "trackingnumber": "tracking_id",
    "trackinglink": "tracking_url",
    "carrier": "shipment_carrier",
    "shippingcarrier": "shipment_carrier",
    "notes": "note",
    "comment": "note",
    "comments": "note",
    "reference": "reference_id",
    "externalid": "reference_id",
    "refundablecredits": "refundable_credits_issued",
    "credits": "refundable_credits_issued",
    "creditscents": "refundable_credits_issued",
    "refundablecreditscents": "refundable_credits_issued",
    "cancelreason": "cancellation_reason",
    # German
    "auftragsnumber": "document_number",
    "auftragsnummer": "document_number",
    "bestellnummer": "document_number",
    "bestellnumber": "document_number",
    "belegnummer": "document_number",
    "rechnungsnummer": "invoice_id",
    "rechnungsnumber": "invoice_id",
    "rechnung": "invoice_id",
    "kundennummer": "customer_id",
    "kundennumber": "customer_id",
    "auftragsstatus": "status",
    "bestellstatus": "status",
    "auftragsdatum": "order_date",
    "bestelldatum": "order_date",
    "belegdatum": "order_date",
    "datum": "order_date",
    "lieferdatum": "shipping_date",
    "versanddatum": "shipping_date",
    "erstelltam": "created_at",
    "angelegtam": "created_at",
    "erstellt": "created_at",
    "versendetam": "shipped_at",
    "geliefertam": "delivered_at",
    "zugestelltam": "delivered_at",
    "storniertam": "cancelled_at",
    "stornogrund": "cancellation_reason",
    "sendungsnummer": "tracking_id",
    "trackingnummer": "tracking_id",
    "versanddienstleister": "shipment_carrier",
    "spediteur": "shipment_carrier",
    "bemerkung": "note",
    "notiz": "note",
    "kommentar": "note",
    "anmerkung": "note",
    # French
    "numerodecommande": "document_number",
    "commande": "document_number",
    "numerodefacture": "invoice_id",
    "facture": "invoice_id",
    "statut": "status",
    "datedecommande": "order_date",
    "datedelivraison": "shipping_date",
    "datedexpedition": "shipping_date",
    "datedecreation": "created_at",
    "client": "customer_id",
    "numeroclient": "customer_id",
    "transporteur": "shipment_carrier",
    "numerodesuivi": "tracking_id",
    "remarque": "note",
    "commentaire": "note",
    # Spanish
    "numerodepedido": "document_number",
    "pedido": "document_number",
    "numerodefactura": "invoice_id",
    "factura": "invoice_id",
    "estado": "status",
    "fechadepedido": "order_date",
    "fecha": "order_date",
    "fechadeenvio": "shipping_date",
    "fechadeentrega": "delivered_at",
    "fechadecreacion": "created_at",
    "transportista": "shipment_carrier",
    "comentario": "note",
    "nota": "note",
    # Dutch
    "ordernummer": "document_number",
    "bestelnummer": "document_number",
    "factuurnummer": "invoice_id",
    "factuur": "invoice_id",
    "besteldatum": "order_date",
    "orderdatum": "order_date",
    "verzenddatum": "shipping_date",
    "leverdatum": "shipping_date",
    "opmerking": "note",
    "klantnummer": "customer_id",
}
ADDRESS_PREFIXES: dict[str, str] = {
    "shipto": "shipping_address",
    "shipping": "shipping_address",
    "ship": "shipping_address",
    "delivery": "shipping_address",
    "billto": "billing_address",
    "billing": "billing_address",
    "bill": "billing_address",
    "liefer": "shipping_address",
    "versand": "shipping_address",
    "rechnungs": "billing_address",
}
ADDRESS_SYNONYMS: dict[str, str] = {
    "firstname": "first_name",
    "lastname": "last_name",
    "email": "email",
    "emailaddress": "email",
    "company": "company",
    "phone": "phone",
    "telephone": "phone",
    "address": "line1",
    "address1": "line1",
    "addressline1": "line1",
    "street": "line1",
    "line1": "line1",
    "address2": "line2",
    "addressline2": "line2",
    "line2": "line2",
    "address3": "line3",
    "line3": "line3",
    "city": "city",
    "town": "city",
    "statecode": "state_code",
    "state": "state",
    "province": "state",
    "region": "state",
    "zip": "zip",
    "zipcode": "zip",
    "postcode": "zip",
    "postalcode": "zip",
    "country": "country",
    "countrycode": "country",
    "validationstatus": "validation_status",
    # German
    "vorname": "first_name",
    "nachname": "last_name",
    "firma": "company",
    "telefon": "phone",
    "strasse": "line1",
    "adresse": "line1",
    "anschrift": "line1",
    "plz": "zip",
    "postleitzahl": "zip",
    "ort": "city",
    "stadt": "city",
    "land": "country",
    "bundesland": "state",
    # French
    "prenom": "first_name",
    "nom": "last_name",
    "nomdefamille": "last_name",
    "societe": "company",
    "entreprise": "company",
    "codepostal": "zip",
    "ville": "city",
    "pays": "country",
    "courriel": "email",
    # Spanish
    "nombre": "first_name",
    "apellido": "last_name",
    "apellidos": "last_name",
    "empresa": "company",
    "telefono": "phone",
    "direccion": "line1",
    "calle": "line1",
    "ciudad": "city",
    "pais": "country",
    "provincia": "state",
    "correo": "email",
    # Dutch
    "voornaam": "first_name",
    "achternaam": "last_name",
    "bedrijf": "company",
    "telefoon": "phone",
    "adres": "line1",
    "straat": "line1",
    "plaats": "city",
    "woonplaats": "city",
    "provincie": "state",
}


def squash(name: str) -> str:
    """Header comparison key: lower case without accents, ``#``/``no``/``num`` → number,
    punctuation dropped (``Numéro de commande`` → ``numerodecommande``)."""
    text = unicodedata.normalize("NFKD", name.casefold())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = text.replace("#", " number ")
    text = re.sub(r"\b(no|nr|num)\b\.?", " number ", text)
    text = re.sub(r"(?<=[a-z])nr\b\.?", "number", text)  # Auftragsnr., Kundennr
    return re.sub(r"[^0-9a-z]", "", text)


def match_header(header: str, known_params: Collection[str]) -> str | None:
    """The param a header most likely means, or None."""
    key = squash(header)
    exact = {squash(p.replace(".", " ")): p for p in known_params}
    if key in exact:
        return exact[key]
    if key in SYNONYMS and SYNONYMS[key] in known_params:
        return SYNONYMS[key]
    if key.endswith("at") and key[:-2] in SYNONYMS:  # "Shipped At" and friends
        candidate = SYNONYMS[key[:-2]]
        return candidate if candidate in known_params else None
    for prefix, address in sorted(ADDRESS_PREFIXES.items(), key=lambda kv: -len(kv[0])):
        rest = key[len(prefix) :]
        for word in ("address", "adresse", "adres"):
            if key.startswith(prefix) and rest.startswith(word) and rest != word:
                rest = rest[len(word) :]
                break
        if key.startswith(prefix) and rest in ADDRESS_SYNONYMS:
            return f"{address}.{ADDRESS_SYNONYMS[rest]}"
    if key in ADDRESS_SYNONYMS and key not in ("state", "address", "nom", "nombre"):
        return f"shipping_address.{ADDRESS_SYNONYMS[key]}"
    return None


CONTROL_SYNONYMS: dict[str, str] = {
    **dict.fromkeys(
        ["total", "amount", "ordertotal", "grandtotal", "grandtotalpurchased", "betrag",
         "gesamtbetrag", "summe", "bruttobetrag", "montant", "montanttotal", "importe",
         "importetotal", "bedrag", "totaalbedrag"],
        "amount",
    ),
    **dict.fromkeys(
        ["currency", "ordercurrency", "currencycode", "wahrung", "devise", "moneda", "valuta"],
        "currency",
    ),
}  # fmt: skip
"""Headers that are the order total or its currency: ``[control]`` fields, never sent."""

STATUS_WORDS: dict[str, str] = {
    **dict.fromkeys(
        ["delivered", "complete", "completed", "fulfilled", "done", "geliefert", "zugestellt",
         "erledigt", "abgeschlossen", "livre", "livree", "entregado", "geleverd", "afgeleverd"],
        "delivered",
    ),
    **dict.fromkeys(
        ["shipped", "sent", "dispatched", "versendet", "versandt", "verschickt", "expedie",
         "expediee", "enviado", "verzonden"],
        "shipped",
    ),
    **dict.fromkeys(
        ["cancelled", "canceled", "storniert", "annulliert", "annule", "annulee", "cancelado",
         "anulado", "geannuleerd"],
        "cancelled",
    ),
    **dict.fromkeys(
        ["processing", "open", "offen", "pending shipment", "awaiting shipment", "in bearbeitung",
         "en cours", "en preparation", "en proceso", "pendiente", "in behandeling"],
        "awaiting_shipment",
    ),
    **dict.fromkeys(["on hold", "on-hold", "held", "angehalten", "en attente"], "on_hold"),
    **dict.fromkeys(
        ["returned", "refunded", "retourniert", "zuruckgesendet", "rembourse", "retourne",
         "devuelto", "reembolsado", "geretourneerd"],
        "returned",
    ),
    **dict.fromkeys(["partially delivered", "partial", "teilgeliefert"], "partially_delivered"),
    **dict.fromkeys(["queued", "new", "neu", "nouveau", "nuevo", "nieuw"], "queued"),
}  # fmt: skip
"""Status words (English, German, French, Spanish, Dutch; accents dropped) whose target is
obvious; ``mapping init`` pre-fills ``[values.status]`` with them."""


def guess_status(value: str, statuses: Collection[str]) -> str | None:
    """The import status a legacy status text obviously means, or None."""
    key = unicodedata.normalize("NFKD", " ".join(value.replace("_", " ").split()).casefold())
    key = "".join(ch for ch in key if not unicodedata.combining(ch))
    slug = key.replace(" ", "_").replace("-", "_")
    if slug in statuses:
        return slug
    first_word = re.split(r"[^a-z]+", key.strip())[0] if key.strip() else ""
    found = (
        STATUS_WORDS.get(key)
        or STATUS_WORDS.get(key.replace("-", " "))
        or STATUS_WORDS.get(first_word)  # "Cancelled - out of stock"
    )
    return found if found in statuses else None


def control_role(header: str) -> str | None:
    """``amount`` or ``currency`` when a header is an order total or its currency."""
    return CONTROL_SYNONYMS.get(squash(header))


@dataclass(frozen=True, slots=True)
class StarterMapping:
    """A starter mapping's text and what it matched."""

    text: str
    matched: dict[str, str]
    unmatched: list[str]
    missing_required: list[str]
    notes: list[str] = field(default_factory=list)
    """Things to check, printed by the CLI (ambiguous dates, a preset's missing columns)."""
    next_steps: list[str] = field(default_factory=list)
    """What the user must add that the export cannot provide, printed by the CLI as ``Next:``."""


PRESETS = ("shopify", "woocommerce", "magento")
"""Presets shipped in ``pipeline/prepare/presets/<name>.toml`` (documented in docs/mapping.md)."""

PRESET_NEXT_STEPS: dict[str, tuple[str, ...]] = {
    "magento": (
        "the Magento grid export has no country column: if every order ships to one country, "
        "uncomment the [defaults] lines in the mapping and set its ISO code "
        '("shipping_address.country" = "DE", "billing_address.country" = "DE"); without '
        "them addresses are sent without a country and postal codes are not checked",
        "set [control] currency_code to the store's currency and [dates] timezone to the "
        "admin's time zone (both marked CHECK)",
    ),
}
"""What a preset's export cannot provide, for ``mapping init --preset`` to print as next steps."""


def preset_text(name: str) -> str:
    """The TOML text of a shipped preset.

    Raises:
        ConfigError: no preset of that name (the known ones are listed).
    """
    if name not in PRESETS:
        raise ConfigError(
            f"[--preset] no preset {name!r}; the presets are: {', '.join(PRESETS)}",
            hint="omit --preset to match the file's headers instead",
        )
    return (resources.files("pipeline.prepare") / "presets" / f"{name}.toml").read_text("utf-8")


def guess_date_formats(samples: Iterable[str]) -> list[str]:
    """Formats (from DATE_FORMATS) that parse every non-empty, non-ISO, non-numeric sample.

    Returns the formats needed, most specific first, e.g. ``["%d/%m/%Y %H:%M", "%d/%m/%Y"]``;
    empty when the samples are ISO 8601, Unix seconds or Excel serials (handled without one).
    """
    values = [v.strip() for v in samples if v and v.strip()]
    values = [v for v in values if not re.fullmatch(r"[+-]?\d+(\.\d+)?|\d{4}-\d{2}-\d{2}T.*", v)]
    needed: list[str] = []
    for value in values:
        if any(_parses(value, fmt) for fmt in needed):
            continue
        for fmt in DATE_FORMATS:
            if _parses(value, fmt) and all(
                _parses(v, fmt) or any(_parses(v, f) for f in needed) or not _same_shape(v, fmt)
                for v in values
            ):
                needed.append(fmt)
                break
    return needed


def _parses(value: str, fmt: str) -> bool:
    try:
        dt.datetime.strptime(value, fmt)
    except ValueError:
        return False
    return True


def _same_shape(value: str, fmt: str) -> bool:
    """Whether a value has the separators of a format (so a format must handle it)."""
    sample = dt.datetime(2001, 2, 3, 4, 5, 6).strftime(fmt)
    return re.sub(r"\d", "9", value) == re.sub(r"\d", "9", sample)


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def ambiguous_day_month(samples: Iterable[str], formats: Sequence[str]) -> list[str]:
    """The chosen formats whose day and month could be swapped for every sample (no day > 12)."""
    values = [v.strip() for v in samples if v and v.strip()]
    out = []
    for fmt in formats:
        if "%d" not in fmt or "%m" not in fmt:
            continue
        swapped = fmt.replace("%d", "\0").replace("%m", "%d").replace("\0", "%m")
        fitting = [v for v in values if _parses(v, fmt)]
        if fitting and all(_parses(v, swapped) for v in fitting):
            out.append(fmt)
    return out


def looks_decimal_comma(samples: Iterable[str]) -> bool:
    """True when amounts are written with a decimal comma (``2.235,37``, ``12,50``)."""
    values = [v.strip() for v in samples if v and v.strip()]
    comma = sum(bool(re.fullmatch(r"-?\d{1,3}(?:[. ]\d{3})*,\d{1,2}", v)) for v in values)
    dot = sum(
        bool(re.fullmatch(r"-?\d{1,3}(?:[, ]\d{3})*\.\d{1,4}|-?\d+\.\d{1,4}", v)) for v in values
    )
    return comma > dot


def starter_mapping(
    header: Iterable[str],
    known_params: Collection[str],
    required: Collection[str],
    statuses: Collection[str],
    status_samples: Iterable[str] = (),
    date_samples: Mapping[str, Sequence[str]] | None = None,
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
    amount_samples: Sequence[str] = (),
) -> StarterMapping:
    """Build a starter mapping (TOML text) for a header; see docs/mapping.md for the format.

    ``date_samples`` are the first values of the columns matched to date parameters,
    ``status_samples`` those of the status column, ``amount_samples`` those of the amount
    column; ``encoding``/``delimiter`` (CSV only) are written to ``[file]``.
    """
    header = list(header)
    matched: dict[str, str] = {}
    control: dict[str, str] = {}
    unmatched: list[str] = []
    for col in header:
        param = match_header(col, known_params)
        role = control_role(col)
        if col.startswith("oi:"):
            unmatched.append(col)
        elif param is not None and param not in matched.values():
            matched[col] = param
        elif role is not None and role not in control.values():
            control[col] = role
        else:
            unmatched.append(col)
    missing = [p for p in required if p not in matched.values()]
    # one order date often feeds every required date parameter
    date_col = next((c for c, p in matched.items() if p == "order_date"), None)
    fed: dict[str, list[str]] = {col: [param] for col, param in matched.items()}
    if date_col is not None:
        for param in ("created_at", "shipping_date"):
            if param in missing:
                fed[date_col].append(param)
                missing.remove(param)
    notes: list[str] = []
    decimal = looks_decimal_comma(amount_samples)
    out = [
        "# Starter mapping written by `order-import mapping init`; review every line.",
        "# Format and every option: docs/mapping.md",
        "version = 1",
    ]
    if unmatched:
        out.append("# Columns not mapped yet: map them below, or keep them in ignore.")
        out.append("ignore = [" + ", ".join(_q(c) for c in unmatched) + "]")
    if encoding or delimiter or decimal:
        out += ["", "[file]                       # how this file is read"]
        if encoding:
            out.append(f"encoding = {_q(encoding)}")
        if delimiter:
            out.append(f"delimiter = {_q(delimiter)}")
        if decimal:
            out += ['decimal = ","', 'thousands = "."']
    out += ["", "[columns]"]
    for col, params in fed.items():
        value = _q(params[0]) if len(params) == 1 else "[" + ", ".join(map(_q, params)) + "]"
        out.append(f"{_q(col)} = {value}")
    out += [
        f"# required, no column found: {p} (map one, or set it in [constants])" for p in missing
    ]
    formats: list[str] = []
    ambiguous: list[str] = []
    for col, values in (date_samples or {}).items():
        if col in matched:
            found = guess_date_formats(values)
            formats += [f for f in found if f not in formats]
            ambiguous += [f for f in ambiguous_day_month(values, found) if f not in ambiguous]
    out += [
        "",
        "[dates]",
        'timezone = "UTC"  # CHECK: the IANA zone the legacy system wrote local times in',
    ]
    if formats:
        out.append("formats = [" + ", ".join(_q(f) for f in formats) + "]  # sniffed from the data")
    else:
        out.append(
            "# formats: none needed (ISO 8601, Unix seconds or Excel dates), or no date column"
        )
    for fmt in ambiguous:
        note = (
            f"every sampled date fits both {fmt} and its month/day swap: check which one the "
            "system wrote"
        )
        out.append(f"# AMBIGUOUS: {note}")
        notes.append(note)
    out += ['ambiguous = "earlier"', 'nonexistent = "shift_forward"', "", "[id]"]
    if "id" in matched.values():
        out.append('source = "column"')
    elif "document_number" in matched.values():
        out += ['source = "document_number"', 'prefix = ""  # e.g. "OLD-"']
    else:
        out += ['source = "derived"', 'prefix = "MIG-"']
    if "amount" in control.values():
        out += ["", "[control]                    # order totals for the reports; never sent"]
        for col, role in control.items():
            out.append(f"{role} = {_q(col)}")
        if "currency" not in control.values():
            out.append('currency_code = "EUR"  # CHECK: the currency of every amount')
    seen: dict[str, None] = {}
    for value in status_samples:
        if value and value.strip() and value.strip() not in statuses:
            seen.setdefault(value.strip(), None)
    if seen and "status" in matched.values():
        out += ["", "# Legacy status text = one of: " + ", ".join(statuses), "[values.status]"]
        for value in list(seen)[:50]:
            guess = guess_status(value, statuses)
            if guess:
                out.append(f"{_q(value)} = {_q(guess)}")
            else:  # left commented: until filled in, validate names the value as an error
                out.append(f'# {_q(value)} = ""  # FILL IN (or skip these rows: [[skip]])')
    return StarterMapping("\n".join(out) + "\n", matched, unmatched, missing, notes)


def preset_starter(name: str, header: Sequence[str], reads: Collection[str]) -> StarterMapping:
    """A preset's text, with which of the file's columns it reads (``reads``: every column the
    preset names) and which columns it needs that the file lacks.

    Raises:
        ConfigError: no preset of that name.
    """
    text = preset_text(name)
    matched = {c: "(preset)" for c in header if c in reads}
    unmatched = [c for c in header if c not in reads]
    absent = sorted(c for c in reads if c not in set(header))
    notes = []
    if absent:
        shown = ", ".join(repr(c) for c in absent[:12]) + (" …" if len(absent) > 12 else "")
        notes.append(f"the preset names {len(absent)} column(s) the file does not have: {shown}")
    title = f"# Written by `order-import mapping init --preset {name}`; review every CHECK.\n"
    steps = list(PRESET_NEXT_STEPS.get(name, ()))
    return StarterMapping(title + text, matched, unmatched, [], notes, steps)
