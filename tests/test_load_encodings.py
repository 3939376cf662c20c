"""Encodings: a guess is cp1252 unless the bytes prove otherwise, and a guess is never silent.

The files are written the way the exporting systems write them (a German ERP in cp1252 with ``;``,
a Polish/Czech system in cp1250, old Unix tools in latin-1, a Mac in Mac Roman, Excel's "Unicode
text" in UTF-16 with a BOM), with text from real addresses rather than text chosen to make the
detector look good. The user-visible parts run the real ``order-import validate`` in a subprocess.
"""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest

from pipeline.errors import InputError
from pipeline.load.encoding import detect_encoding, non_ascii_values, oddities
from pipeline.load.reader import open_source
from tests.support import assert_clean_exit, cli

ERP_HEADER = "Belegnr;Kunde;Straße;PLZ;Ort;Land;Betrag;Währung;Bemerkung"
ERP_ROWS = [
    "R-1001;Bäckerei Müller GmbH;Hauptstraße 12;80331;München;Deutschland;1.235,50;EUR;"
    "Lieferung über Spedition",
    "R-1002;Hôtel de la Paix SA;Rue du Rhône 4;1204;Genève;Schweiz;899,00;CHF;",
    "R-1003;Österreichische Post AG;Rochusplatz 1;1030;Wien;Österreich;12,90;EUR;"
    "Preis inkl. 20 % MwSt. (2,15 €)",
    "R-1004;Café Crème Ltd;12 Rue de l'Église;75004;Paris;Frankreich;45,00;EUR;",
    "R-1005;Muñoz & Peña S.L.;Calle Mayor 3;28013;Madrid;Spanien;310,00;EUR;señal 50 €",
    "R-1006;Sørensen ApS;Nørregade 7;1165;København;Dänemark;2.000,00;DKK;",
    "R-1007;Gießerei Weiß KG;Industriestraße 5;47051;Duisburg;Deutschland;18,75;EUR;",
    "R-1008;Città di Forlì;Piazza Saffi 8;47121;Forlì;Italien;99,99;EUR;è urgente",
]

CE_HEADER = "id;odbiorca;ulica;kod;miasto;kraj;kwota"
CE_ROWS = [
    "1;Zakład Usług Różnych;ul. Piotrkowska 104;90-001;Łódź;PL;120,00",
    "2;Jiří Dvořák s.r.o.;Náměstí T. G. Masaryka 12;750 02;Přerov;CZ;89,50",
    "3;Małgorzata Wiśniewska;ul. Długa 5;80-831;Gdańsk;PL;15,00",
    "4;Květinářství Růžena;Komenského 3;674 01;Třebíč;CZ;230,00",
    "5;Przedsiębiorstwo Źródło;ul. Żeromskiego 9;26-600;Radom;PL;77,70",
]


def _write(tmp_path: Path, name: str, header: str, rows: list[str], encoding: str) -> Path:
    path = tmp_path / name
    path.write_bytes(("\r\n".join([header, *rows]) + "\r\n").encode(encoding))
    return path


def _column(path: Path, column: str, **kw: str) -> list[str]:
    source = open_source(path, **kw)  # type: ignore[arg-type]
    return [value for chunk in source.chunks() for value in chunk.frame[column].tolist()]


def test_cp1252_erp_export_is_read_as_cp1252_and_says_it_guessed(tmp_path: Path) -> None:
    """The German ERP file that charset-normalizer read as cp1250 (Genčve): cp1252, guessed."""
    path = _write(tmp_path, "erp.csv", ERP_HEADER, ERP_ROWS, "cp1252")
    source = open_source(path)
    assert (source.encoding, source.delimiter) == ("cp1252", ";")
    assert source.encoding_guessed
    assert "Genève" in source.encoding_samples  # the value that would tell cp1250 from cp1252
    assert source.encoding_samples[0] == "Genève"  # telling values come first
    note = source.encoding_note
    assert note is not None
    assert "guessed" in note
    assert "'Genève'" in note
    assert "--encoding" in note
    assert _column(path, "Ort") == [
        "München",
        "Genève",
        "Wien",
        "Paris",
        "Madrid",
        "København",
        "Duisburg",
        "Forlì",
    ]
    assert _column(path, "Land")[2] == "Österreich"
    assert _column(path, "Bemerkung")[4] == "señal 50 €"


def test_cp1250_polish_czech_export_is_still_read_as_cp1250(tmp_path: Path) -> None:
    """Central-European letters that read oddly as cp1252 (£ódŸ, Wroc³aw) prove cp1250."""
    path = _write(tmp_path, "pl_cz.csv", CE_HEADER, CE_ROWS, "cp1250")
    source = open_source(path)
    assert source.encoding == "cp1250"
    assert source.encoding_guessed
    assert _column(path, "miasto") == ["Łódź", "Přerov", "Gdańsk", "Třebíč", "Radom"]
    assert _column(path, "odbiorca")[1] == "Jiří Dvořák s.r.o."


def test_bytes_undefined_in_cp1252_rule_it_out(tmp_path: Path) -> None:
    """Ť/ť (0x8D/0x9D in cp1250) have no cp1252 meaning: the reading is cp1250, guessed."""
    rows = ["1;Ťukas;Šťastná 7;Poprad", "2;Kuťák;Ťahanovská 2;Košice"]
    path = _write(tmp_path, "sk.csv", "id;meno;ulica;mesto", rows, "cp1250")
    guess = detect_encoding(path.read_bytes(), path)
    assert (guess.encoding, guess.guessed) == ("cp1250", True)
    assert "undefined" in guess.reason
    assert _column(path, "ulica") == ["Šťastná 7", "Ťahanovská 2"]


def test_one_cyrillic_row_in_an_ascii_file_is_cp1251(tmp_path: Path) -> None:
    """A Russian name in an otherwise ASCII file reads as Ïåòðîâà in cp1252: ruled out."""
    rows = [f"{i};Ivanov;Moskva" for i in range(20)] + ["21;Петрова Анна;Москва"]
    path = _write(tmp_path, "ru.csv", "id;name;city", rows, "cp1251")
    source = open_source(path)
    assert source.encoding == "cp1251"
    assert source.encoding_samples[:2] == ("Петрова Анна", "Москва")


def test_latin1_export_reads_the_same_as_cp1252(tmp_path: Path) -> None:
    """latin-1 and cp1252 agree on every printable Western letter: the text is intact."""
    rows = [row for row in ERP_ROWS if "€" not in row]
    path = _write(tmp_path, "l1.csv", ERP_HEADER, rows, "latin-1")
    source = open_source(path)
    assert source.encoding == "cp1252"
    assert source.encoding_guessed
    assert _column(path, "Ort")[1] == "Genève"


def test_mac_roman_export_is_not_read_as_cp1252(tmp_path: Path) -> None:
    """Mac Roman German text reads as MŸnchen / Wei§ in cp1252: the odd words rule it out."""
    rows = [r for r in ERP_ROWS if "€" not in r]
    path = _write(tmp_path, "mac.csv", ERP_HEADER, rows, "mac-roman")
    source = open_source(path)
    assert source.encoding == "mac-roman"
    assert _column(path, "Ort")[:2] == ["München", "Genève"]


def test_utf16_with_bom_is_certain(tmp_path: Path) -> None:
    """Excel's "Unicode text" (UTF-16 LE with BOM, TAB): known, not guessed, no samples."""
    header = ERP_HEADER.replace(";", "\t")
    rows = [row.replace(";", "\t") for row in ERP_ROWS]
    path = _write(tmp_path, "u16.txt", header, rows, "utf-16")
    source = open_source(path)
    assert (source.encoding, source.delimiter) == ("utf-16", "\t")
    assert not source.encoding_guessed
    assert source.encoding_samples == ()
    assert source.encoding_note is None
    assert _column(path, "Ort")[1] == "Genève"


def test_utf8_is_certain(tmp_path: Path) -> None:
    """Strict UTF-8 is not a guess: no note."""
    path = _write(tmp_path, "u8.csv", CE_HEADER, CE_ROWS, "utf-8")
    source = open_source(path)
    assert (source.encoding, source.encoding_guessed, source.encoding_note) == (
        "utf-8",
        False,
        None,
    )


@pytest.mark.parametrize("given", ["cp1250", "latin-1"])
def test_a_given_encoding_always_wins(tmp_path: Path, given: str) -> None:
    """--encoding (or the mapping file's encoding) is used as given and is not a guess."""
    rows = [row for row in ERP_ROWS if "€" not in row]  # latin-1 has no euro sign
    path = _write(tmp_path, "erp.csv", ERP_HEADER, rows, "cp1252")
    source = open_source(path, encoding=given, delimiter=";")
    assert (source.encoding, source.encoding_guessed) == (given, False)
    city = _column(path, "Ort", encoding=given, delimiter=";")[1]
    assert city == ("Genčve" if given == "cp1250" else "Genève")


def test_an_unknown_or_non_text_encoding_is_refused(tmp_path: Path) -> None:
    """A codec that is not a text encoding (base64) is an InputError, not a LookupError."""
    path = _write(tmp_path, "erp.csv", ERP_HEADER, ERP_ROWS, "cp1252")
    for name in ("klingon", "base64"):
        with pytest.raises(InputError, match="unknown text encoding"):
            open_source(path, encoding=name)


def test_oddities_count_symbols_inside_words_and_case_breaks() -> None:
    """What counts as odd, and what Western text legitimately has (m³, 12€, ¿Dónde)."""
    assert oddities("Wroc³aw £ódŸ jeŸdziæ Gie§erei MŸnchen") == 5
    western = "12 m³ 12€ ¿Dónde? ¡hola °C Genève Österreich 1½ col·lecció «Café» „Müller“ –Zoë–"
    assert oddities(western) == 0
    assert oddities("Ïåòðîâà ¤Õ‗¯ÔÓ") == 2  # Cyrillic read as cp1252, as cp850
    assert oddities("żDónde") == 1


def test_samples_show_telling_values_first_and_are_short() -> None:
    """Values whose letters read differently in cp1250 and cp1252 come first; long ones cut."""
    text = "a;b\nKöln;Genève\n" + "x;" + "é" * 100 + "\n"
    values = non_ascii_values(text, ";", "cp1252")
    assert values[0] == "Genève"
    assert "Köln" in values
    assert all(len(v) <= 40 for v in values)


def test_validate_cli_keeps_geneve_intact(tmp_path: Path) -> None:
    """Real CLI: the ERP file's bad value is shown as Genève, never Genčve; exit 1, no trace."""
    header = "invoice_id;status;created_at;order_date;shipping_date;shipping_address[city]"
    rows = [
        "INV-1;delivered;1680688800;1680688800;1680775200;Genève",
        "INV-2;livré à Genève;1680688800;1680688800;1680775200;Zürich",
    ]
    path = _write(tmp_path, "erp_api.csv", header, rows, "cp1252")
    result = subprocess.run(
        cli("validate", str(path), "--report-dir", str(tmp_path / "rep")),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert_clean_exit(result, 1)
    assert "livré à Genève" in result.stdout
    assert "Genčve" not in result.stdout
    report = (tmp_path / "rep" / "validation.csv").read_text(encoding="utf-8")
    assert "livré à Genève" in report


def test_validate_cli_says_the_encoding_was_guessed(tmp_path: Path) -> None:
    """Real CLI: the summary says cp1252 was guessed and shows Genève as read."""
    header = "invoice_id;status;created_at;order_date;shipping_date;shipping_address[city]"
    rows = [f"INV-{i};delivered;1680688800;1680688800;1680775200;Genève" for i in range(3)]
    path = _write(tmp_path, "erp_api.csv", header, rows, "cp1252")
    result = subprocess.run(
        cli("validate", str(path)), capture_output=True, text=True, timeout=120, check=False
    )
    assert_clean_exit(result, 0)
    assert "cp1252 was guessed" in result.stdout
    assert "'Genève'" in result.stdout


WESTERN_WORDS = {
    "de": "Müller Schröder Weiß Köln München Düsseldorf Straße Größe Bäckerei Grüße Österreich "
    "Zürich Nürnberg Lübeck Fußweg Gärtner",
    "fr": "Genève Besançon Orléans Lefèvre Bérénice élève Hélène Françoise crème Pâques Noël "
    "garçon Chloé Jérôme Évry Sèvres",
    "es": "Málaga Coruña León Muñoz Pérez Gómez Peñalver Cádiz Jaén Córdoba Martínez Ibáñez "
    "Logroño Begoña Avilés",
    "it": "Forlì Cantù Città Niccolò Però Perché Caffè Mondovì Portofino Lucà Nicolò Pietà",
    "pt": "São Paulo João Conceição Ação Gonçalves Simões Guimarães Brasília Fátima Luís Antônio",
    "nordic": "København Århus Malmö Tromsø Sørensen Åström Ærø Göteborg Jönköping Ålesund "
    "Bjørn Kjærgaard Næstved",
    "nl": "Citroën België Curaçao Ruïne Zoë Reünie Coöperatie Groningen Maastricht",
}
CENTRAL_WORDS = {
    "pl": "Łódź Kraków Gdańsk Wrocław Kowalski Wiśniewski Wójcik Poznań Białystok Częstochowa "
    "Rzeszów Żory Dąbrowa Łukasz Małgorzata Zieliński Toruń",
    "cs": "Přerov Brno Plzeň Budějovice Ústí Třebíč Dvořák Němcová Jiří Kateřina Černý Ostrava "
    "Hradec Králové Kroměříž Děčín Šumperk Žďár Mělník",
    "hu": "Győr Székesfehérvár Pécs Kovács Szőke Debrecen Miskolc Szeged Nyíregyháza Kecskemét "
    "Szombathely Tóth Fűzfő",
}


def _sample(words: str, rows: int, seed: int, encoding: str) -> bytes:
    pick = random.Random(seed).choice
    names = words.split()
    lines = ["id;name;city;note"] + [
        f"{i};{pick(names)} {pick(['GmbH', 'Ltd', 'SA', ''])};{pick(names)};{pick(['ok', ''])}"
        for i in range(rows)
    ]
    return ("\n".join(lines) + "\n").encode(encoding)


@pytest.mark.parametrize("language", sorted(WESTERN_WORDS))
def test_western_text_is_never_read_as_a_neighbour(language: str) -> None:
    """The cp1252 bias: Western names in cp1252, 2 to 200 rows, seeded: always cp1252."""
    for rows in (2, 5, 20, 200):
        for seed in range(6):
            sample = _sample(WESTERN_WORDS[language], rows, seed, "cp1252")
            guess = detect_encoding(sample, Path("x.csv"))
            assert guess.encoding == "cp1252", (rows, seed, guess)


@pytest.mark.parametrize("language", sorted(CENTRAL_WORDS))
def test_central_european_text_of_some_length_is_cp1250(language: str) -> None:
    """With a few hundred rows the bytes prove cp1250 for Polish, Czech and Hungarian."""
    for seed in range(4):
        sample = _sample(CENTRAL_WORDS[language], 200, seed, "cp1250")
        assert detect_encoding(sample, Path("x.csv")).encoding == "cp1250", seed
