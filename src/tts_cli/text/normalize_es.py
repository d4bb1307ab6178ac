"""Spanish text normaliser: writes numbers, symbols and abbreviations out as words.

The rules run in a fixed order, most specific first, so that e.g. "27/11/2026" is read as a
date before its parts could be read as plain numbers, and "3,50 €" as money before "3,50"
could be read as a decimal:

    abbreviations -> dates -> times -> money -> percentages -> ordinals -> units/degrees
    -> numbers before "mil"/"millones" -> plain numbers -> symbols (&, @) -> spacing

Number conventions (Spain's RAE norm, with a Latin-American fallback):
  "1.500" thousands dot (groups of exactly 3 digits), "3,5" decimal comma, "3.5" decimal
  point (read "punto"), "-5" negative, "007" / very long digit strings read digit by digit.
"""
from __future__ import annotations

import re

import tts_cli.text.numbers_es as nums

# --- abbreviations ---------------------------------------------------------------------

# Titles and forms of address: case-sensitive, so "Dr." is expanded but "DR." is left alone.
_TITLES = {
    "Sr.": "señor", "Sres.": "señores", "Sra.": "señora", "Sras.": "señoras",
    "Srta.": "señorita", "Srtas.": "señoritas", "Dr.": "doctor", "Dres.": "doctores",
    "Dra.": "doctora", "Dras.": "doctoras", "Ud.": "usted", "Uds.": "ustedes",
    "Vd.": "usted", "Vds.": "ustedes", "Dña.": "doña", "D.ª": "doña", "Prof.": "profesor",
    "Profa.": "profesora", "Lic.": "licenciado", "Lcda.": "licenciada", "Ing.": "ingeniero",
    "Sto.": "santo", "Sta.": "santa", "Avda.": "avenida", "Av.": "avenida",
    "EE. UU.": "Estados Unidos", "EE.UU.": "Estados Unidos", "a. C.": "antes de Cristo",
    "d. C.": "después de Cristo",
}
# Common abbreviations: case-insensitive.
_COMMON = {
    "etc.": "etcétera", "p. ej.": "por ejemplo", "p.ej.": "por ejemplo", "nº": "número",
    "n.º": "número", "núm.": "número", "núms.": "números", "pág.": "página",
    "págs.": "páginas", "tel.": "teléfono", "tlf.": "teléfono", "tfno.": "teléfono",
    "aprox.": "aproximadamente", "art.": "artículo", "cap.": "capítulo",
    "izq.": "izquierda", "dcha.": "derecha", "c/": "calle", "vs.": "contra",
}


def _alternation(keys) -> str:
    # Longest first so "Sras." wins over "Sra." and "núms." over "núm.".
    return "|".join(re.escape(k) for k in sorted(keys, key=len, reverse=True))


# An abbreviation starts at a word start and, if it ends in a letter (nº), ends at a word end.
_TITLE_RE = re.compile(rf"(?<!\w)({_alternation(_TITLES)})(?![^\W\d_])")
_COMMON_RE = re.compile(rf"(?<!\w)({_alternation(_COMMON)})(?![^\W\d_])", re.IGNORECASE)
_COMMON_LOWER = {k.lower(): v for k, v in _COMMON.items()}


def _expand(match: re.Match, table: dict, text_end: int) -> str:
    word = table[match.group(1) if table is _TITLES else match.group(1).lower()]
    # The abbreviation's dot doubles as the sentence's full stop when nothing follows it.
    rest = match.string[match.end():text_end]
    if match.group(1).endswith(".") and not rest.strip(" \"'»”)"):
        word += "."
    return word


def expand_abbreviations(text: str) -> str:
    text = _TITLE_RE.sub(lambda m: _expand(m, _TITLES, len(m.string)), text)
    return _COMMON_RE.sub(lambda m: _expand(m, _COMMON_LOWER, len(m.string)), text)


# --- numbers: parsing ----------------------------------------------------------------------

# One number as written: "1.500,25" (thousands dots + decimal comma), "3,5", "3.5", "42".
# Groups of exactly three digits after a dot are thousands; anything else after a dot is a
# decimal point (Latin-American style).
NUM = r"\d{1,3}(?:\.\d{3})+(?:,\d+)?(?!\d|\.\d)|\d+(?:[.,]\d+)?"
# A number stands alone: not glued to letters ("mp3") or to another number ("1.2.3").
_BEFORE = r"(?<![\w.,])"
_AFTER = r"(?![\d])"


def parse_number(s: str) -> tuple[int, str | None, str]:
    """'1.500,25' -> (1500, '25', 'coma'); '3.5' -> (3, '5', 'punto'); '42' -> (42, None, '')."""
    if re.fullmatch(r"\d{1,3}(?:\.\d{3})+(?:,\d+)?", s):
        whole, _, frac = s.replace(".", "").partition(",")
        return int(whole), frac or None, "coma"
    for sep, word in ((",", "coma"), (".", "punto")):
        if sep in s:
            whole, frac = s.split(sep, 1)
            return int(whole), frac, word
    return int(s), None, ""


def say_number(s: str, *, negative: bool = False, apocope: bool = False,
               feminine: bool = False) -> str:
    """A number as written (see NUM) in words."""
    if "," not in s and "." not in s and len(s) > 1 and (s.startswith("0") or len(s) > 15):
        words = nums.digits(s)  # "007", phone numbers
    else:
        whole, frac, sep = parse_number(s)
        if frac is None:
            words = nums.cardinal(whole, apocope=apocope, feminine=feminine)
        else:
            words = f"{nums.cardinal(whole)} {sep} {nums.decimal_part(frac)}"
    return ("menos " + words) if negative else words


def _is_one(s: str) -> bool:
    """Singular noun after it: exactly 1 ("1 km", "1 €"); "1,5 km" takes the plural."""
    return s == "1"


# --- dates ---------------------------------------------------------------------------------

MONTHS = ["enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto",
          "septiembre", "octubre", "noviembre", "diciembre"]
_DATE_RE = re.compile(r"(?<![\w/.-])(\d{1,2})([/.-])(\d{1,2})\2(\d{4}|\d{2})(?![\w/-]|\.\d)")


def _date(m: re.Match) -> str:
    day, month, year = int(m.group(1)), int(m.group(3)), m.group(4)
    if not (1 <= day <= 31 and 1 <= month <= 12):
        return m.group(0)
    return f"{nums.cardinal(day)} de {MONTHS[month - 1]} de {nums.cardinal(int(year))}"


# --- times ---------------------------------------------------------------------------------

_TIME_RE = re.compile(
    r"(?<![\w:.,])([01]?\d|2[0-3]):([0-5]\d)(?![\d:])(\s*(?:h|hs|hrs|horas)(?![^\W\d_])\.?)?")


def _time(m: re.Match) -> str:
    hour, minute, formal = int(m.group(1)), int(m.group(2)), m.group(3)
    if formal:  # "10:30 h": 24-hour clock, read formally
        words = nums.cardinal(hour, feminine=True) + (" hora" if hour == 1 else " horas")
        if minute:
            words += f" y {nums.cardinal(minute, apocope=True)} minuto" + ("" if minute == 1 else "s")
        # "h." at the end of a sentence: keep the full stop.
        return words + ("." if formal.endswith(".") and not m.string[m.end():].strip() else "")
    hour_words = nums.cardinal(hour or 12, feminine=True)  # "a la una", "a las doce"
    if minute == 0:
        return hour_words + " en punto"
    if minute == 15:
        return hour_words + " y cuarto"
    if minute == 30:
        return hour_words + " y media"
    return f"{hour_words} y {nums.cardinal(minute)}"


# --- money ---------------------------------------------------------------------------------

# symbol -> (singular, plural, feminine?, cent singular, cent plural)
_CURRENCIES = {
    "€": ("euro", "euros", False, "céntimo", "céntimos"),
    "$": ("dólar", "dólares", False, "centavo", "centavos"),
    "£": ("libra", "libras", True, "penique", "peniques"),
    "¥": ("yen", "yenes", False, None, None),
}
_CURRENCY_CODES = {"EUR": "€", "USD": "$", "US$": "$", "GBP": "£", "JPY": "¥"}
_CUR = r"[€$£¥]"
_MONEY_BEFORE_RE = re.compile(rf"(?<!\w)(US\$|{_CUR})\s?([-−]?)({NUM}){_AFTER}")
_MONEY_AFTER_RE = re.compile(
    rf"{_BEFORE}([-−]?)({NUM})\s?({_CUR}|EUR\b|USD\b|GBP\b|JPY\b)")


def say_money(amount: str, symbol: str, negative: bool = False) -> str:
    """'3,50', '€' -> 'tres euros con cincuenta céntimos'."""
    one, many, fem, cent_one, cent_many = _CURRENCIES[_CURRENCY_CODES.get(symbol, symbol)]
    whole, frac, sep = parse_number(amount)
    prefix = "menos " if negative else ""
    if frac is not None and (len(frac) > 2 or cent_one is None):  # "3,555 €": a decimal amount
        return f"{prefix}{nums.cardinal(whole)} {sep} {nums.decimal_part(frac)} {many}"
    cents = int(frac.ljust(2, "0")) if frac else 0
    parts = []
    if whole or not cents:
        words = nums.cardinal(whole, apocope=not fem, feminine=fem)
        parts.append(f"{words}{' de' if nums.takes_de(whole) else ''} {one if whole == 1 else many}")
    if cents:
        parts.append(f"{nums.cardinal(cents, apocope=True)} {cent_one if cents == 1 else cent_many}")
    return prefix + " con ".join(parts)


# --- percentages, ordinals, units -----------------------------------------------------------

_PERCENT_RE = re.compile(rf"{_BEFORE}([-−]?)({NUM})\s?(%|‰)")


def _percent(m: re.Match) -> str:
    per = "por ciento" if m.group(3) == "%" else "por mil"
    return f"{say_number(m.group(2), negative=bool(m.group(1)))} {per}"


# 1º 1.º 2ª 2.ª 1.er 3er 1.os 2.as 1ºs
_ORDINAL_RE = re.compile(r"(?<![\w.,])(\d+)(\.?[ºª]s?|\.(?:er|os|as|o|a)|er)(?![^\W\d_])")


def _ordinal(m: re.Match) -> str:
    n, suffix = int(m.group(1)), m.group(2).lstrip(".")
    return nums.ordinal(n, feminine=suffix[0] in "ªa", apocope=suffix == "er",
                        plural=suffix.endswith("s"))


# unit -> (singular, plural, feminine?). Only read as units right after a number, so "m"
# is "metros" in "5 m" and stays a letter elsewhere.
_UNITS = {
    "km/h": ("kilómetro por hora", "kilómetros por hora", False),
    "km": ("kilómetro", "kilómetros", False), "m": ("metro", "metros", False),
    "cm": ("centímetro", "centímetros", False), "mm": ("milímetro", "milímetros", False),
    "m²": ("metro cuadrado", "metros cuadrados", False),
    "m2": ("metro cuadrado", "metros cuadrados", False),
    "m³": ("metro cúbico", "metros cúbicos", False), "km²": ("kilómetro cuadrado", "kilómetros cuadrados", False),
    "kg": ("kilo", "kilos", False), "g": ("gramo", "gramos", False), "mg": ("miligramo", "miligramos", False),
    "l": ("litro", "litros", False), "ml": ("mililitro", "mililitros", False),
    "h": ("hora", "horas", True), "min": ("minuto", "minutos", False), "s": ("segundo", "segundos", False),
    "ha": ("hectárea", "hectáreas", True), "kWh": ("kilovatio hora", "kilovatios hora", False),
    "°C": ("grado centígrado", "grados centígrados", False), "ºC": ("grado centígrado", "grados centígrados", False),
    "°F": ("grado Fahrenheit", "grados Fahrenheit", False), "°": ("grado", "grados", False),
}
_UNIT_RE = re.compile(rf"{_BEFORE}([-−]?)({NUM})\s?({_alternation(_UNITS)})(?![^\W\d_]|[²³/])")


def _unit(m: re.Match) -> str:
    one, many, fem = _UNITS[m.group(3)]
    amount = m.group(2)
    words = say_number(amount, negative=bool(m.group(1)), apocope=not fem, feminine=fem)
    whole, frac, _ = parse_number(amount)
    return f"{words}{' de' if frac is None and nums.takes_de(whole) else ''} {one if _is_one(amount) else many}"


# --- plain numbers ------------------------------------------------------------------------

# "21 millones" -> "veintiún millones", "1 millón" -> "un millón"
_BEFORE_SCALE_RE = re.compile(rf"{_BEFORE}({NUM})(?=\s+(?:mil|millón|millones|billón|billones)\b)")
# A small integer right before a word: "un libro", "veintiún días", "treinta y una casas",
# "doscientas personas". Gender is guessed from the word's ending; function words ("el 1 de
# mayo") and undotted 4-digit numbers (years: "en 2021 llegó") are left alone.
_BEFORE_WORD_RE = re.compile(rf"{_BEFORE}(\d{{1,3}}(?:\.\d{{3}})*)(?!\.\d|,\d)(?=\s+([^\W\d_]{{3,}}))")
_NOT_NOUNS = {
    "del", "las", "los", "por", "para", "con", "sin", "que", "entre", "hasta", "desde", "sobre",
    "tras", "según", "contra", "hacia", "como", "más", "menos", "pero", "fue", "era", "son",
    "está", "están", "han", "hay", "muy", "este", "esta", "esto", "ese", "esa",
}
_MASCULINE_IN_A = {"día", "días", "mapa", "mapas", "problema", "problemas", "programa",
                   "programas", "sistema", "sistemas", "tema", "temas", "idioma", "idiomas",
                   "clima", "planeta", "planetas", "poeta", "poetas", "sofá", "sofás"}


def _before_word(m: re.Match) -> str:
    n, word = int(m.group(1).replace(".", "")), m.group(2).lower()
    if word in _NOT_NOUNS or m.group(1).startswith("0"):
        return m.group(1)
    needs_gender = n % 10 == 1 and n % 100 != 11 or n >= 200
    if not needs_gender:
        return m.group(1)
    feminine = (word.endswith(("a", "as", "ción", "ciones", "dad", "dades", "tud", "tudes"))
                and word not in _MASCULINE_IN_A)
    return nums.cardinal(n, feminine=feminine, apocope=not feminine)


_NEGATIVE_RE = re.compile(rf"(?<![\w.,])[-−]({NUM}){_AFTER}")
_NUMBER_RE = re.compile(rf"{_BEFORE}({NUM}){_AFTER}")


def _spacing(text: str) -> str:
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r" +([,.;:!?»)\]}])", r"\1", text)  # "euros ." -> "euros."
    text = re.sub(r"([¿¡«(\[{]) +", r"\1", text)
    return text.strip()


def normalize_es(text: str) -> str:
    """Spanish text with numbers, symbols and abbreviations spelled out (after `basic_cleanup`,
    which `tts_cli.text.normalize.normalize_text` applies first)."""
    text = expand_abbreviations(text)
    text = _DATE_RE.sub(_date, text)
    text = _TIME_RE.sub(_time, text)
    text = _MONEY_BEFORE_RE.sub(lambda m: say_money(m.group(3), m.group(1), bool(m.group(2))), text)
    text = _MONEY_AFTER_RE.sub(lambda m: say_money(m.group(2), m.group(3), bool(m.group(1))), text)
    text = _PERCENT_RE.sub(_percent, text)
    text = _ORDINAL_RE.sub(_ordinal, text)
    text = _UNIT_RE.sub(_unit, text)
    text = _BEFORE_SCALE_RE.sub(lambda m: say_number(m.group(1), apocope=True), text)
    text = _BEFORE_WORD_RE.sub(_before_word, text)
    text = _NEGATIVE_RE.sub(lambda m: say_number(m.group(1), negative=True), text)
    text = _NUMBER_RE.sub(lambda m: say_number(m.group(1)), text)
    text = re.sub(r"\s*&\s*", " y ", text)
    text = re.sub(r"(?<=\w)@(?=\w)", " arroba ", text)
    return _spacing(text)
